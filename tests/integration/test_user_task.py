"""A user's own task, written from the README alone: its code block becomes a plugin module,
with a config folder and a space of the user's own. A sweep runs through the CLI; then each
way a user gets it wrong is refused in one line (exit 2), or stops the sweep with its
reason, and Ctrl-C leaves nothing running and no temporary files."""

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tests.integration.servers import interruptible

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"
SPACE = """name: wave
recipe:
  prune:
    stage: {choices: [none, magnitude_prune]}
    sparsity: {low: 0.3, high: 0.8, step: 0.1, when: {stage: magnitude_prune}}
  quantize:
    stage: quantize
    precision: {choices: [fp32, fp16, int8_dynamic]}
baseline: {prune: {stage: none}, quantize: {precision: fp32}}
"""
# Ways to get a task wrong, beside the README's one (a user's next attempts).
MISTAKES = """
import hashlib

import torch
from slimsweep.compressors import register_stage
from wave_task import WaveRegression


class NamedInput(WaveRegression):
    def load_data(self):
        data = super().load_data()
        rename = lambda batches: [({"input": i["features"]}, t) for i, t in batches]
        return type(data)(rename(data.train), rename(data.calibration), rename(data.eval))

    def latency_inputs(self):
        return {"input": torch.zeros(16, 4)}


class DataMissing(WaveRegression):
    def load_data(self):
        raise FileNotFoundError("wave.csv")


class NotExportable(WaveRegression):
    def build_model(self):
        class ThroughHash(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(4, 1)

            def forward(self, features):  # through Python's hashing: neither traced nor exported
                salt = hashlib.sha256(features.numpy().tobytes()).digest()[0] / 255
                return self.linear(features) + salt

        return ThroughHash()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: the README's wave_task.py, its config, its own space."""
    folder = tmp_path_factory.mktemp("project")
    code = re.search(r"```python\n(# wave_task\.py\n.*?)```", README.read_text(), re.S)
    (folder / "wave_task.py").write_text(code.group(1))
    (folder / "mistakes.py").write_text(MISTAKES)
    make_config = re.search(r"printf '([^']*)' > myconf/task/wave.yaml", README.read_text())
    (folder / "myconf" / "task").mkdir(parents=True)
    (folder / "myconf" / "task" / "wave.yaml").write_text(
        make_config.group(1).encode().decode("unicode_escape")
    )
    (folder / "myconf" / "space").mkdir()
    (folder / "myconf" / "space" / "wave.yaml").write_text(SPACE)
    for target in ("NamedInput", "DataMissing", "NotExportable"):
        config = f"_target_: mistakes.{target}\nname: wave\nepochs: 5\n"
        (folder / "myconf" / "task" / f"{target}.yaml").write_text(config)
    return folder


def _args(project: Path, runs: Path, *extra: str) -> list[str]:
    return [
        f"hydra.searchpath=[file://{project / 'myconf'}]",
        "space=wave",
        "plugins=[wave_task, mistakes]",
        f"sweep.dir={runs}",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        *extra,
    ]


# The console script, as a user runs it: unlike `python -m`, it does not put the folder it is
# launched from on sys.path, so a module missing from `plugins` is not found.
SLIMSWEEP = str(Path(sys.executable).parent / "slimsweep")


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [SLIMSWEEP, "run", "--quiet", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)


def _one_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr, result.stderr


def test_a_task_from_the_readme_runs_and_every_mistake_is_one_line(
    project: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    wave = ["task=wave", "task.epochs=5", "search.n_trials=4", "sweep.name=wave"]
    first = _run(project, *_args(project, runs, *wave))
    assert first.returncode == 0, first.stderr
    assert "Pareto front of sweep 'wave'" in first.stdout
    storage = f"sqlite:///{runs}/optuna.db"
    trials = optuna.load_study(study_name="wave", storage=storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4

    mistakes = [
        (["task=NamedInput"], "forward(features: torch.Tensor) -> torch.Tensor refused them"),
        (["task=DataMissing"], "task wave: load_data() raised FileNotFoundError('wave.csv')"),
        (
            ["task=wave", "plugins=[]"],
            "cannot build 'wave_task.WaveRegression'",  # and the hint to list it in plugins
        ),
        (["task=wave", "task.epochz=5"], "allowed keys there: _target_, name, samples, epochs"),
        (["task=wave", "cluster.cpus_per_trial=4096"], "cluster.cpus_per_trial=4096 is more"),
        (["task=wave", f"sweep.dir={project / 'wave_task.py' / 'runs'}"], "cannot be written"),
        (["task=wave", "space.recipe.prune.sparsity.step=2"], "is wider than the range"),
        (  # the first sweep's name, under a narrower space
            [*wave, "space.recipe.quantize.precision.choices=[fp32,fp16]"],
            "space.recipe.quantize.precision.choices: ['fp32', 'fp16', 'int8_dynamic'] -> "
            "['fp32', 'fp16']",
        ),
    ]
    for extra, message in mistakes:
        refused = _run(project, *_args(project, runs, *extra))
        _one_line(refused, message)
        if extra[0] == "task=wave" and "plugins=[]" in extra:
            assert "list it in plugins (plugins=[wave_task])" in refused.stderr
    allowed = _run(
        project,
        *_args(project, runs, *wave),
        "space.recipe.quantize.precision.choices=[fp32,fp16]",
        "sweep.allow_changed_space=true",
    )
    assert allowed.returncode == 0, allowed.stderr

    # A baseline that fails stops the sweep at once, with its reason.
    stopped = _run(project, *_args(project, runs, "task=NotExportable", "search.n_trials=4"))
    _one_line(stopped, "the baseline (trial 0) failed: ")
    assert "the cause: " in stopped.stderr and "Refer to the full stack trace" not in stopped.stderr
    states = [t.state for t in optuna.load_study(study_name="wave-wave", storage=storage).trials]
    assert states[0] == TrialState.FAIL and TrialState.COMPLETE not in states


def test_ctrl_c_marks_the_trials_in_flight_and_leaves_no_temporary_files(
    project: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = _args(project, runs, "task=wave", "task.epochs=5", "search.n_trials=8")
    driver = subprocess.Popen(
        [SLIMSWEEP, "run", "--quiet", *args],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    storage = f"sqlite:///{runs}/optuna.db"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.3)
        try:
            states = [
                t.state for t in optuna.load_study(study_name="wave-wave", storage=storage).trials
            ]
        except Exception:  # not created yet
            continue
        if TrialState.COMPLETE in states and TrialState.RUNNING in states:
            break
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "interrupted; run the same command again to resume" in stderr

    trials = optuna.load_study(study_name="wave-wave", storage=storage).trials
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert any(t.user_attrs.get("requeued_from") is not None for t in trials)  # run again later
    client = mlflow.MlflowClient(f"sqlite:///{runs}/mlflow.db")
    experiment = client.get_experiment_by_name("wave-wave").experiment_id
    runs_left = client.search_runs([experiment])
    assert all(run.info.status != "RUNNING" for run in runs_left)
    parent = [r for r in runs_left if r.data.tags.get("slimsweep.role") == "sweep"]
    assert [r.info.status for r in parent] == ["KILLED"]
    scratch = Path(tempfile.gettempdir()) / f"slimsweep-wave-wave-{driver.pid}"
    assert not scratch.exists()
