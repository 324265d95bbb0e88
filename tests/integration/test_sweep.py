"""A real sweep end to end: CLI → Optuna (SQLite) ⇄ Ray tasks → MLflow (SQLite)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.study import open_storage

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
SWEEP = "it"


def sweep_args(workdir: Path, cache: Path, n_trials: int) -> list[str]:
    return [
        f"sweep.dir={workdir}",
        f"sweep.cache_dir={cache}",
        f"sweep.name={SWEEP}",
        f"search.n_trials={n_trials}",
        "search.parallelism=2",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        "plugins=[exploding_stage]",
        # the plugin's stage is one more choice of the first slot (quantizing comes last)
        "space.recipe.prune.stage.choices=[none, magnitude_prune, explode]",
        "space.enqueue=["
        "{prune: {stage: none}, quantize: {precision: int8_static, per_channel: true,"
        " calibration: minmax}},"
        "{prune: {stage: explode}, quantize: {precision: fp32}}]",
    ]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "slimsweep.sweeps.cli", *args]


def slimsweep(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI from this folder, where the plugin module lives."""
    return subprocess.run(command(*args), cwd=HERE, capture_output=True, text=True, timeout=600)


def load(workdir: Path) -> optuna.Study:
    # the driver may be creating the tables right now: open as the CLI's readers do
    return optuna.load_study(
        study_name=SWEEP, storage=open_storage(f"sqlite:///{workdir}/optuna.db")
    )


def trial_runs(workdir: Path) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], "tags.`slimsweep.role` = 'trial'")
    return {run.info.run_id: run for run in runs}


def front_trials(table: str) -> set[int]:
    """Trial numbers in a printed front table (rows under the dashed rule)."""
    lines = table.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip() or not line.split()[0].isdigit():
            break
        rows.append(int(line.split()[0]))
    return set(rows)


def _dominated(a: list[float], b: list[float]) -> bool:
    """b dominates a (maximize the first value, minimize the others)."""
    signs = [1, -1, -1]
    pairs = [(s * x, s * y) for s, x, y in zip(signs, b, a, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def _non_dominated(values: dict[int, list[float]]) -> set[int]:
    return {n for n, v in values.items() if not any(_dominated(v, w) for w in values.values())}


def _expected_front(study: optuna.Study) -> set[int]:
    """Brute force: the in-sweep front, then its latencies replaced by the quiet ones."""
    completed = {
        t.number: list(t.values) for t in study.get_trials() if t.state == TrialState.COMPLETE
    }
    quiet = study.user_attrs["quiet_latency"]
    candidates = {
        n: [*completed[n][:2], quiet[str(n)]["latency_ms_median_quiet"]]
        for n in _non_dominated(completed)
    }
    return _non_dominated(candidates)


def test_sweep_records_every_trial_and_resumes(
    tmp_path: Path, baseline_cache: Path, trained_digits
) -> None:
    args = sweep_args(tmp_path, baseline_cache, n_trials=5)
    first = slimsweep("run", "--quiet", *args)
    assert first.returncode == 0, first.stderr
    study = load(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 5
    states = [t.state for t in trials]
    assert states.count(TrialState.FAIL) >= 1 and states.count(TrialState.COMPLETE) >= 3

    # --quiet: one line per failed trial, then the front, nothing else.
    failures, _, table = first.stdout.partition("\n\nPareto front of sweep")
    assert sorted(failures.splitlines()) == sorted(
        f"trial {t.number} failed: RuntimeError: deliberate failure for the test"
        for t in trials
        if t.state == TrialState.FAIL
    )
    assert table

    # Every trial is in MLflow too, under the sweep's parent run, with the state, params,
    # metrics, config and artifact it had.
    runs = trial_runs(tmp_path)
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == set(runs)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(SWEEP).experiment_id
    (parent,) = client.search_runs([experiment], "tags.`slimsweep.role` = 'sweep'")
    composed = compose(args)
    for trial in trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        downloads = tmp_path / "dl" / run.info.run_id
        config = client.download_artifacts(run.info.run_id, "config.yaml", str(downloads))
        assert yaml.safe_load(Path(config).read_text()) == composed
        if trial.state == TrialState.FAIL:
            assert run.info.status == "FAILED"
            assert "deliberate failure for the test" in run.data.tags["slimsweep.failure"]
            assert trial.params["prune.stage"] == "explode"
            failure = client.download_artifacts(run.info.run_id, "failure.txt", str(downloads))
            traceback = Path(failure).read_text()
            assert traceback.startswith("Traceback (most recent call last)")
            assert "exploding_stage.py" in traceback and "raise RuntimeError" in traceback
            continue
        assert run.info.status == "FINISHED"
        accuracy, size_bytes, latency = trial.values
        assert run.data.metrics["accuracy"] == accuracy
        assert run.data.metrics["latency_ms_median"] == latency
        # the artifact is the run's logged MLflow model (ONNX flavour), its bytes the measured
        model = client.get_logged_model(run.data.tags["slimsweep.model_id"])
        assert model.source_run_id == run.info.run_id
        artifact = _model_file(model)
        assert artifact.stat().st_size == size_bytes == run.data.metrics["size_bytes"]
        assert (
            hashlib.sha256(artifact.read_bytes()).hexdigest()
            == run.data.tags["slimsweep.artifact_sha256"]
        )
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == [
            "digits_cnn-eval",
            "digits_cnn-calibration",
        ]

    # int8 artifacts are smaller than fp32 ones (both unpruned: the first two enqueued trials).
    fp32, int8 = trials[0], trials[1]
    assert fp32.params["quantize.precision"] == "fp32" and fp32.params["prune.stage"] == "none"
    assert (
        int8.params["quantize.precision"] == "int8_static" and int8.params["prune.stage"] == "none"
    )
    assert int8.values[1] < 0.3 * fp32.values[1]

    # Each slot's saved bytes, measured on real artifacts: pruning saves bytes (compact
    # storage), any precision but fp32 saves bytes, fp32 or no stage saves none; they add up.
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            metrics = runs[trial.user_attrs["mlflow_run_id"]].data.metrics
            saved = {k: v for k, v in metrics.items() if k.startswith("saved_bytes/")}
            assert set(saved) == {"saved_bytes/quantize", "saved_bytes/prune"}
            pruned = trial.params["prune.stage"] != "none"
            assert (saved["saved_bytes/prune"] > 0) == pruned, trial.params  # `none` saves 0
            quantized = trial.params["quantize.precision"] != "fp32"
            assert (saved["saved_bytes/quantize"] > 0) == quantized, trial.params
            assert fp32.values[1] - sum(saved.values()) == trial.values[1]

    # The printed front is exactly the non-dominated set, by brute force.
    completed = {t.number: list(t.values) for t in trials if t.state == TrialState.COMPLETE}
    non_dominated = _non_dominated(completed)  # the candidates, on in-sweep numbers
    assert front_trials(first.stdout) == _expected_front(study)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "front")} == {
        "front/front.png",
        "front/front.html",
    }
    final_front = _expected_front(study)
    tagged = {
        n
        for n, t in enumerate(trials)
        if runs[t.user_attrs["mlflow_run_id"]].data.tags.get("pareto") == "true"
    }
    assert tagged == final_front

    # Measurements never overlapped anything on the node (two trials ran side by side).
    phases = [
        (t.number, *phase)
        for t in trials
        if t.state == TrialState.COMPLETE
        for phase in t.user_attrs["phases"]
    ]
    assert {p[1] for p in phases} == {"prepare", "compress", "evaluate", "latency", "statistics"}
    for number, name, start, end in phases:
        if name == "latency":
            others = [p for p in phases if p[0] != number]
            assert not [p for p in others if p[2] < end and start < p[3]], (number, start, end)
    assert any(a[0] != b[0] and a[2] < b[3] and b[2] < a[3] for a in phases for b in phases)

    # Every latency comes from one hardware fingerprint, recorded in both stores.
    assert study.user_attrs["hardware"] == fingerprint()
    assert all(
        runs[t.user_attrs["mlflow_run_id"]].data.tags["slimsweep.hardware"] == fingerprint()
        for t in trials
        if t.state == TrialState.COMPLETE
    )
    # ...and how each latency was taken.
    assert {
        runs[t.user_attrs["mlflow_run_id"]].data.tags["slimsweep.latency_setup"]
        for t in trials
        if t.state == TrialState.COMPLETE
    } == {"provider=CPUExecutionProvider; inputs=host arrays"}

    # The front was re-measured in the quiet phase; MLflow has both numbers.
    quiet = study.user_attrs["quiet_latency"]
    assert set(quiet) >= {str(n) for n in non_dominated}
    assert "latency ms, quiet" in first.stdout
    for number in non_dominated:
        metrics = runs[trials[number].user_attrs["mlflow_run_id"]].data.metrics
        assert metrics["latency_ms_median_quiet"] == quiet[str(number)]["latency_ms_median_quiet"]
        assert metrics["latency_repeats_quiet"] == 5 * 10  # 5 rounds of `repeats`
        assert metrics["latency_ms_median"] == trials[number].values[2]

    # Resuming with other objectives or directions is refused in one line, before any trial.
    for objectives, message in [
        ("[{metric: quality, direction: maximize}]", "was started with objectives"),
        (
            "[{metric: quality, direction: minimize}, {metric: size_bytes, direction: minimize},"
            " {metric: latency_ms_median, direction: minimize}]",
            "was started with other directions",
        ),
    ]:
        refused = slimsweep("run", *args, f"search.objectives={objectives}")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert len(load(tmp_path).get_trials()) == 5

    # Resuming with a larger budget keeps every earlier trial and runs only what is missing.
    again = slimsweep("run", *sweep_args(tmp_path, baseline_cache, n_trials=7))
    assert again.returncode == 0, again.stderr
    assert "5 trials finished, 2 to run" in again.stdout
    resumed = load(tmp_path).get_trials()
    assert len(resumed) == 7
    for before, after in zip(trials, resumed, strict=False):
        assert (before.number, before.params, before.values, before.state) == (
            after.number,
            after.params,
            after.values,
            after.state,
        )

    # A finished sweep run again runs nothing, and (quiet) prints only its front.
    finished = slimsweep("run", "--quiet", *sweep_args(tmp_path, baseline_cache, n_trials=7))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("\nPareto front of sweep 'it'")
    assert len(load(tmp_path).get_trials()) == 7

    # `slimsweep pareto` reads the same front back from the stores.
    shown = slimsweep("pareto", f"sweep.dir={tmp_path}")
    assert shown.returncode == 0, shown.stderr
    assert "Pareto front of sweep 'it'" in shown.stdout
    assert front_trials(shown.stdout) == _expected_front(load(tmp_path))

    # ... as JSON, sorted by any objective, compared with the baseline (enqueued first: trial 0).
    as_json = slimsweep("pareto", SWEEP, f"sweep.dir={tmp_path}", "--json", "--sort", "size_bytes")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert {row["trial"] for row in document["front"]} == _expected_front(load(tmp_path))
    sizes = [row["values"]["size_bytes"] for row in document["front"]]
    assert sizes == sorted(sizes)
    assert document["baseline"]["trial"] == 0 and trials[0].user_attrs["baseline"] is True
    for row in document["front"]:
        ratio = document["baseline"]["values"]["size_bytes"] / row["values"]["size_bytes"]
        assert row["versus_baseline"]["size_bytes"] == pytest.approx(ratio)

    # Bad input: one clear line, a non-zero exit.
    for args, message in [
        (("pareto", "nope", f"sweep.dir={tmp_path}"), "unknown sweep 'nope'; known: it"),
        (
            ("pareto", SWEEP, f"sweep.dir={tmp_path}", "--sort", "speed"),
            "--sort 'speed' is not an objective",
        ),
    ]:
        refused = slimsweep(*args)
        assert refused.returncode == 2 and message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_killed_driver_loses_no_completed_trial(
    tmp_path: Path, baseline_cache: Path, trained_digits
) -> None:
    args = sweep_args(tmp_path, baseline_cache, n_trials=6)
    log = tmp_path / "driver.log"
    with open(log, "w") as stderr:
        driver = subprocess.Popen(
            command("run", *args),
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    states: list[TrialState] = []
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.3)
            if not (tmp_path / "optuna.db").exists():
                continue
            try:
                states = [t.state for t in load(tmp_path).get_trials()]
            except KeyError:  # the study is not created yet
                continue
            if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states:
                break
        else:
            pytest.fail(
                f"the sweep never had two completed trials and one running (driver exit "
                f"{driver.poll()}, states {states}):\n{log.read_text()[-3000:]}"
            )
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {t.number: t for t in load(tmp_path).get_trials()}
    interrupted = {n for n, t in before.items() if t.state == TrialState.RUNNING}
    assert interrupted

    # Read now, the front says the sweep is unfinished and that no latency was re-measured;
    # so does a model card exported now.
    shown = slimsweep("pareto", SWEEP, f"sweep.dir={tmp_path}")
    assert shown.returncode == 0, shown.stderr
    assert "UNFINISHED" in shown.stdout and "latency ms [95% CI]" in shown.stdout
    assert "* latency measured during the sweep" in shown.stdout
    assert f"not re-measured alone: `slimsweep remeasure {SWEEP}`" in shown.stdout
    on_front = min(front_trials(shown.stdout))
    card = tmp_path / "card"
    exported = slimsweep("export", SWEEP, str(on_front), f"sweep.dir={tmp_path}", "--to", str(card))
    assert exported.returncode == 0, exported.stderr
    text = (card / "MODEL_CARD.md").read_text()
    assert "- sweep: UNFINISHED" in text and "- latency: latency measured during the sweep" in text
    report = tmp_path / "report.html"
    assert slimsweep("report", SWEEP, f"sweep.dir={tmp_path}", "--to", str(report)).returncode == 0
    assert "UNFINISHED" in report.read_text() and "not re-measured alone" in report.read_text()

    # `slimsweep remeasure` runs the quiet phase now: the front is re-measured (still unfinished).
    remeasured = slimsweep("remeasure", SWEEP, f"sweep.dir={tmp_path}", "--rounds", "2")
    assert remeasured.returncode == 0, remeasured.stderr
    assert "UNFINISHED" in remeasured.stdout and "latency ms, quiet" in remeasured.stdout
    assert "not re-measured" not in remeasured.stdout
    quiet = load(tmp_path).user_attrs["quiet_latency"]
    assert {str(n) for n in front_trials(remeasured.stdout)} <= set(quiet)
    assert all(q["latency_repeats_quiet"] == 2 * 10 for q in quiet.values())

    resumed = slimsweep("run", *args)
    assert resumed.returncode == 0, resumed.stderr
    after = {t.number: t for t in load(tmp_path).get_trials()}
    for number, trial in before.items():
        if trial.state in (TrialState.COMPLETE, TrialState.FAIL):
            assert (after[number].state, after[number].values) == (trial.state, trial.values)
    runs = trial_runs(tmp_path)
    for number in interrupted:
        assert after[number].state == TrialState.FAIL
        if "mlflow_run_id" in after[number].user_attrs:  # unless killed before its run existed
            assert runs[after[number].user_attrs["mlflow_run_id"]].info.status == "KILLED"
        rerun = [t for t in after.values() if t.user_attrs.get("requeued_from") == number]
        # the re-run keeps what had been drawn (nothing, if the driver died right after ask)
        assert len(rerun) == 1 and after[number].params.items() <= rerun[0].params.items()
        assert rerun[0].state in (TrialState.COMPLETE, TrialState.FAIL)
    assert all(run.info.status != "RUNNING" for run in runs.values())
    counted = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(counted) - len(interrupted) == 6
    assert "UNFINISHED" not in resumed.stdout


def test_choose_export_and_register_a_model(
    tmp_path: Path, baseline_cache: Path, trained_digits, browser
) -> None:
    """A user's last step: pick within bounds, export what was measured, register it."""
    workdir = tmp_path / "runs"
    assert slimsweep("run", *sweep_args(workdir, baseline_cache, n_trials=4)).returncode == 0
    study = load(workdir)
    rows = {
        r["trial"]: r
        for r in json.loads(slimsweep("pareto", SWEEP, f"sweep.dir={workdir}", "--json").stdout)[
            "front"
        ]
    }
    slowest = max(r["values"]["latency_ms_median"] for r in rows.values())
    picked = slimsweep(
        "pick", SWEEP, f"sweep.dir={workdir}", "--max-latency-ms", str(slowest), "--json"
    )
    assert picked.returncode == 0, picked.stderr
    choice = json.loads(picked.stdout)
    assert choice["values"]["accuracy"] == max(r["values"]["accuracy"] for r in rows.values())
    impossible = slimsweep("pick", SWEEP, f"sweep.dir={workdir}", "--min-accuracy", "1.01")
    assert impossible.returncode == 2 and "no model on the front" in impossible.stderr

    number = choice["trial"]
    out = tmp_path / "deploy"
    exported = slimsweep("export", SWEEP, str(number), f"sweep.dir={workdir}", "--to", str(out))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md",
        "config.yaml",
        "model.onnx",
        "recipe.yaml",
    ]
    sha256 = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    run = mlflow.MlflowClient(f"sqlite:///{workdir}/mlflow.db").get_run(choice["run_id"])
    assert (
        sha256 == run.data.tags["slimsweep.artifact_sha256"]
        and sha256 in (out / "MODEL_CARD.md").read_text()
    )
    assert "- inputs: `pixels` float32 [batch, 1, 8, 8]" in (out / "MODEL_CARD.md").read_text()

    # Bad input: each a single line and exit 2, nothing written.
    states = {t.number: t.state for t in study.get_trials()}
    failed = next((n for n, s in states.items() if s == TrialState.FAIL), None)
    assert failed is not None, states
    for args, message in [
        (("export", SWEEP, str(number), f"sweep.dir={workdir}", "--to", str(out)), "is not empty"),
        (
            ("export", SWEEP, "99", f"sweep.dir={workdir}", "--to", str(tmp_path / "a")),
            "has no trial 99",
        ),
        (
            ("export", SWEEP, str(failed), f"sweep.dir={workdir}", "--to", str(tmp_path / "b")),
            "is FAIL, not COMPLETE",
        ),
    ]:
        refused = slimsweep(*args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    # A tampered artifact is refused by export and register alike.
    client = mlflow.MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    stored = _model_file(client.get_logged_model(run.data.tags["slimsweep.model_id"]))
    stored.write_bytes(stored.read_bytes() + b"\0")
    for args in [
        ("export", SWEEP, str(number), f"sweep.dir={workdir}", "--to", str(tmp_path / "c")),
        ("register", SWEEP, str(number), f"sweep.dir={workdir}"),
    ]:
        refused = slimsweep(*args)
        assert refused.returncode == 2 and "it was changed; refusing it" in refused.stderr
    assert not (tmp_path / "c").exists()

    # The quiet phase refuses the changed artifact too, in one line: the sweep still ends, its
    # front on the in-sweep numbers, tagged in MLflow.
    load(workdir).set_user_attr("quiet_latency", {})  # as if the quiet phase had not run
    for run_id, run in trial_runs(workdir).items():
        if "pareto" in run.data.tags:  # failed trials never get one
            client.delete_tag(run_id, "pareto")
    rerun = slimsweep("run", *sweep_args(workdir, baseline_cache, n_trials=4))
    assert rerun.returncode == 0, rerun.stderr
    warned = [line for line in rerun.stdout.splitlines() if line.startswith("quiet phase")]
    assert len(warned) == 1 and f"artifact of trial {number} does not match" in warned[0]
    assert "latency ms, quiet" not in rerun.stdout and "latency ms [95% CI]" in rerun.stdout
    completed = {t.number: list(t.values) for t in study.get_trials() if t.values is not None}
    tagged = {
        int(run.data.tags["slimsweep.trial"])
        for run in trial_runs(workdir).values()
        if run.data.tags.get("pareto") == "true"
    }
    assert tagged == _non_dominated(completed) == front_trials(rerun.stdout)

    # Registering an intact trial puts it in MLflow's registry under the alias.
    other = next(n for n, s in states.items() if s == TrialState.COMPLETE and n != number)
    registered = slimsweep(
        "register", SWEEP, str(other), f"sweep.dir={workdir}", "--alias", "champion"
    )
    assert registered.returncode == 0, registered.stderr
    version = mlflow.MlflowClient(f"sqlite:///{workdir}/mlflow.db").get_model_version_by_alias(
        SWEEP, "champion"
    )
    assert version.run_id == study.trials[other].user_attrs["mlflow_run_id"]

    # The report renders in real headless Chromium, plot included.
    report = slimsweep(
        "report", SWEEP, f"sweep.dir={workdir}", "--to", str(tmp_path / "report.html")
    )
    assert report.returncode == 0, report.stderr
    _check_rendered(
        browser,
        tmp_path / "report.html",
        tmp_path,
        completed=sum(s == TrialState.COMPLETE for s in states.values()),
    )


def _model_file(model) -> Path:
    """Where the local store keeps a logged model's `model.onnx`."""
    return Path(model.artifact_location.removeprefix("file://")) / "model.onnx"


def _check_rendered(browser, page: Path, out: Path, completed: int) -> None:
    """Render `page` in headless Chromium: the DOM it built holds one plotted point per
    completed trial, and its screenshot (kept beside the test's files) is not blank."""
    built = browser.dom(page.as_uri())
    assert built.count("<circle") == completed and 'id="front-table"' in built
    shot = out / "report.png"
    browser.screenshot(page.as_uri(), shot, (1100, 1400))
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1400, 1100) and pixels.std() > 0.05  # drawn, not blank
