"""Recording a trial into real stores (SQLite MLflow, an Optuna study): the latency Optuna
learns from is the trial's ratio times one reference for the whole sweep."""

import hashlib
from pathlib import Path

import optuna

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.recording import Recorder
from slimsweep.sweeps.engine.trial import TrialResult
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.results.tracking import Tracker

OBJECTIVES = (
    "search.objectives=[{metric: quality, direction: maximize},"
    " {metric: latency_ms_median, direction: minimize},"
    " {metric: saved_bytes/prune, direction: maximize}]"
)


def _result(number: int, ratio: float, baseline_ms: float) -> TrialResult:
    metrics = {
        "accuracy": 0.9,
        "size_bytes": 1.0,
        "latency_ratio": ratio,
        "latency_ratio_ci95_low": 0.9 * ratio,
        "latency_ratio_ci95_high": 1.1 * ratio,
        "baseline_latency_ms_median": baseline_ms,
        "latency_ms_median_measured": ratio * baseline_ms,
    }
    artifact = b"artifact"
    sha256 = hashlib.sha256(artifact).hexdigest()
    return TrialResult(number, metrics, "model.onnx", artifact, sha256, "node", [])


def test_every_trial_is_scaled_by_the_first_recorded_trials_baseline(tmp_path: Path) -> None:
    settings = load_settings([f"sweep.dir={tmp_path}", OBJECTIVES])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize", "maximize"])
    tracker = Tracker(settings.tracking.uri, settings.tracking.artifact_root, "recorded")
    recorder = Recorder(settings, study, tracker, LineProgress(lambda line: None))

    def record(result_of) -> optuna.trial.FrozenTrial:
        trial = study.ask()
        recorder.record(trial, recorder.start(trial, []), result_of(trial.number))
        return study.trials[trial.number]

    failed = record(lambda n: TrialResult(n, error="Traceback ...\nRuntimeError: boom"))
    assert failed.state == optuna.trial.TrialState.FAIL and failed.user_attrs["failure"] == (
        "RuntimeError: boom"
    )
    assert "latency_reference_ms" not in study.user_attrs  # a failed trial sets no scale
    calm = record(lambda n: _result(n, ratio=0.5, baseline_ms=2.0))
    loaded = record(lambda n: _result(n, ratio=0.25, baseline_ms=8.0))  # a 4x slower machine
    assert study.user_attrs["latency_reference_ms"] == 2.0
    assert calm.values == [0.9, 1.0, 0.0]  # 0.5 x 2.0 ms; a `none` slot saved 0 bytes
    assert loaded.values == [0.9, 0.5, 0.0]  # 0.25 x the same 2.0 ms, not x 8.0
    metrics = loaded.user_attrs["metrics"]
    assert (metrics["latency_ms_ci95_low"], metrics["latency_ms_ci95_high"]) == (0.45, 0.55)
    logged = tracker.client.get_run(loaded.user_attrs["mlflow_run_id"]).data.metrics
    assert logged["latency_ms_median"] == 0.5 and logged["latency_reference_ms"] == 2.0
