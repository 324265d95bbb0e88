"""The user-task API: a task from outside slimsweep plugs in; a wrong one is refused
before any trial runs, naming what is wrong."""

import subprocess
import sys
from pathlib import Path

import pytest

from slimsweep.sweeps import task_check
from slimsweep.sweeps.engine.trial import TrialRequest, run_trial
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.space import RecipeStep
from slimsweep.sweeps.task_check import check_task

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def test_a_task_from_outside_slimsweep_is_accepted_and_runs_a_trial(tmp_path: Path) -> None:
    config = {"_target_": "user_task.WaveRegression", "name": "wave"}
    checked = check_task(config)
    assert checked.task.name == "wave" and checked.quality_metrics == ("neg_mse",)
    with_recall = check_task({"_target_": "user_task.WithRecall", "name": "wave"})
    assert with_recall.quality_metrics == ("neg_mse", "max_error")
    recipe = [
        RecipeStep("prune", "magnitude_prune", {"sparsity": 0.5}),
        RecipeStep("quantize", "quantize", {"precision": "int8_dynamic"}),
    ]
    runtime = OrtCpuConfig(
        name="ort_cpu", latency=LatencySettings(warmup=1, repeats=3, min_seconds=0)
    )
    result = run_trial(TrialRequest(0, recipe, WorkerSpec(config, runtime), str(tmp_path)))
    assert result.error is None, result.error
    assert -0.1 < result.metrics["neg_mse"] <= 0.0  # the trained baseline fits the wave
    assert result.metrics["zero_fraction"] > 0.45


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("user_task.NoEvalData", "task data: the eval split must be a non-empty list of batches"),
        (
            "user_task.WrongShape",
            "the model must return one tensor with the batch first; "
            "on an eval batch of 64 it returned torch.Size([1])",
        ),
        ("user_task.ScoreNotANumber", "task wave: score() returned 'good', not a finite number"),
        ("user_task.NotAPair", "task data: eval[0] must be an (inputs, targets) pair"),
        ("user_task.NumpyInputs", "task data: eval[0]: inputs ['input'] are not tensors"),
        (
            "user_task.MixedBatchSizes",
            "task data: eval[0]: inputs and targets must be tensors with one batch size; got "
            "{'input': 64} and targets torch.Size([63, 1])",
        ),
        (
            "user_task.LatencyInputsRenamed",
            "with the names ['features'] (from latency_inputs()), and forward(",
        ),
        (
            "user_task.LatencyInputsRenamedForAnyName",
            "task wave: latency_inputs() names ['features'], the eval batches name ['input']",
        ),
        ("user_task.Missing", "task: cannot build 'user_task.Missing'"),
        (
            "user_task.ForwardNamedOtherwise",
            "task wave: the model was called as model(**inputs) with the names ['input'] (from "
            "latency_inputs()), and forward(features: torch.Tensor) -> torch.Tensor refused them",
        ),
    ],
)
def test_a_wrong_task_is_refused_naming_the_problem(target: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_task({"_target_": target, "name": "wave"})
    assert message in str(error.value)


def test_a_model_refusing_its_inputs_is_caught_before_any_data_loads() -> None:
    with pytest.raises(ConfigError, match="forward.*refused them"):
        check_task({"_target_": "user_task.ForwardRefusedBeforeData", "name": "wave"})


def test_a_slow_data_load_is_never_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_check, "HEARTBEAT_SECONDS", 0.1)
    said: list[str] = []
    check_task({"_target_": "user_task.SlowData", "name": "wave"}, say=said.append)
    assert said[0] == "task wave: loading its data"
    assert any(line.startswith("task wave: still loading its data (") for line in said[1:-1])
    assert said[-1].startswith("task wave: data ready in ")


def test_the_cli_refuses_a_wrong_task_before_any_trial(tmp_path: Path) -> None:
    # the user's own config folder joins the search path: conf/task/wave.yaml selects it
    (tmp_path / "conf" / "task").mkdir(parents=True)
    (tmp_path / "conf" / "task" / "wave.yaml").write_text(
        "_target_: user_task.ScoreNotANumber\nname: wave\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            *("-m", "slimsweep.sweeps.cli", "run", f"sweep.dir={tmp_path / 'runs'}"),
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            "task=wave",
            "plugins=[user_task]",
        ],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    assert "score() returned 'good', not a finite number" in run.stderr
    assert not (tmp_path / "runs" / "optuna.db").exists()
