"""The driver: asks Optuna for recipes, runs them as Ray tasks, tells Optuna what they measured.

It alone talks to the study and to MLflow; this is the one module that imports Ray.
"""

import contextlib
import fcntl
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna

from slimsweep.sweeps.config import Settings
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.pareto import (
    ARTIFACT_ATTR,
    BASELINE_ATTR,
    METRICS_ATTR,
    QUIET,
    QUIET_ATTR,
    RECIPE_ATTR,
    RUN_ID_ATTR,
    baseline,
    front,
)
from slimsweep.sweeps.plots import front_html, front_png
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.remeasure import Artifact, RemeasureRequest, remeasure
from slimsweep.sweeps.runtimes import RUNTIMES
from slimsweep.sweeps.settings import QUALITY
from slimsweep.sweeps.space import describe_recipe
from slimsweep.sweeps.study import build_sampler, finished_count, interrupted_trials, open_study
from slimsweep.sweeps.tracking import Tracker
from slimsweep.sweeps.trial import TrialRequest, TrialResult, run_trial

HARDWARE_ATTR = "hardware"  # study attribute: the fingerprint every latency comes from
PHASES_ATTR = "phases"  # trial attribute: (phase, start, end) wall-clock windows on its node


@dataclass
class _Running:
    trial: optuna.Trial
    run_id: str


def run_sweep(settings: Settings, progress: LineProgress | None = None) -> optuna.Study:
    """Run the sweep to `search.n_trials` finished trials; safe to call again to resume."""
    progress = progress or LineProgress()
    _quiet_libraries()
    sampler = build_sampler(settings.search.sampler)
    workdir = Path(settings.sweep.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    with _sweep_lock(workdir, settings.sweep.name):
        study = open_study(settings, sampler)
        tracker = Tracker(
            settings.tracking.uri, settings.tracking.artifact_root, settings.sweep.name
        )
        tracker.log_sweep_config(settings.resolved)
        for stale in interrupted_trials(study):
            progress.message(f"trial {stale.number} was interrupted; its recipe will run again")
        tracker.close_interrupted_trials(
            "the driver stopped before this trial finished; its recipe is run again"
        )
        finished = finished_count(study)
        remaining = settings.search.n_trials - finished
        progress.message(
            f"sweep {settings.sweep.name!r}: {finished} trials finished, "
            f"{max(remaining, 0)} to run; stores in {workdir}"
        )
        if remaining > 0:
            progress.begin(remaining)
            _run_trials(settings, study, tracker, remaining, progress)
        _remeasure_front(settings, study, tracker, progress)
        rows = front(study)
        with tempfile.TemporaryDirectory(prefix="slimsweep-plots-") as scratch:
            plots = [Path(scratch) / "front.png", Path(scratch) / "front.html"]
            if rows:
                front_png(study, plots[0])
                front_html(study, plots[1])
            tracker.finish_sweep(
                {r.run_id for r in rows}, _trial_run_ids(study), plots if rows else []
            )
    return study


def _start_ray(settings: Settings) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=settings.cluster.address,
            num_cpus=settings.cluster.num_cpus if settings.cluster.address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )


def _run_trials(
    settings: Settings,
    study: optuna.Study,
    tracker: Tracker,
    remaining: int,
    progress: LineProgress,
) -> None:
    import ray

    _start_ray(settings)
    remote_trial = ray.remote(num_cpus=settings.cluster.cpus_per_trial)(run_trial)
    running: dict[ray.ObjectRef, _Running] = {}
    launched = 0
    while launched < remaining or running:
        while launched < remaining and len(running) < settings.search.parallelism:
            trial = study.ask()
            recipe = settings.space.sample(trial)
            summary = describe_recipe(recipe)
            run_id = tracker.start_trial(trial.number, trial.params, summary, settings.resolved)
            trial.set_user_attr(RECIPE_ATTR, summary)
            if trial.params == settings.space.baseline:
                trial.set_user_attr(BASELINE_ATTR, True)
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            request = TrialRequest(
                trial.number,
                recipe,
                settings.task,
                settings.runtime,
                str(Path(settings.sweep.cache_dir).resolve()),
                settings.plugins,
                settings.cluster.exclusive_latency,
            )
            running[remote_trial.remote(request)] = _Running(trial, run_id)
            launched += 1
            progress.started(trial.number, summary)
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            entry = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:
                result = TrialResult(entry.trial.number, error=f"Ray lost the trial: {error}")
            _record(settings, study, tracker, entry, result, progress)


def _record(
    settings: Settings,
    study: optuna.Study,
    tracker: Tracker,
    entry: _Running,
    result: TrialResult,
    progress: LineProgress,
) -> None:
    """MLflow first, then Optuna: a told trial always has its run and artifact logged."""
    number = entry.trial.number
    hardware_refusal = _hardware_refusal(settings, study, result.hardware)
    if result.error is None and hardware_refusal:
        result = TrialResult(number, error=hardware_refusal)
    if result.error is None:
        values = [
            result.metrics[settings.quality_metric if o.metric == QUALITY else o.metric]
            for o in settings.search.objectives
        ]
        try:
            details = {"hardware": result.hardware, "phases": result.phases}
            tracker.finish_trial(
                entry.run_id,
                result.metrics,
                result.artifact_name,
                result.artifact,
                result.sha256,
                details,
            )
        except Exception as error:
            failed = TrialResult(number, error=f"recording the trial failed: {error!r}")
            _record(settings, study, tracker, entry, failed, progress)
            return
        entry.trial.set_user_attr(METRICS_ATTR, result.metrics)
        entry.trial.set_user_attr(ARTIFACT_ATTR, result.artifact_name)
        entry.trial.set_user_attr(PHASES_ATTR, result.phases)
        study.tell(entry.trial, values)
        progress.finished(number, dict(zip(settings.metric_names(), values, strict=True)), study)
    else:
        tracker.fail_trial(entry.run_id, result.error)
        entry.trial.set_user_attr("failure", result.error.strip().splitlines()[-1][:1000])
        study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
        progress.failed(number, result.error.strip().splitlines()[-1])


def _hardware_refusal(settings: Settings, study: optuna.Study, hardware: str) -> str | None:
    """Latencies from two hardware targets must not meet in one objective, unless allowed."""
    if not hardware:
        return None
    expected = study.user_attrs.get(HARDWARE_ATTR)
    if expected is None:
        study.set_user_attr(HARDWARE_ATTR, hardware)
        return None
    if hardware == expected or settings.search.allow_mixed_hardware:
        return None
    return (
        f"latency measured on {hardware!r}, but this sweep's latencies come from {expected!r}; "
        "set search.allow_mixed_hardware=true to mix them in one objective"
    )


def _remeasure_front(
    settings: Settings, study: optuna.Study, tracker: Tracker, progress: LineProgress
) -> None:
    """Re-measure the front's candidates alone and interleaved; the front then uses these."""
    import ray

    candidates = front(study, quiet=False)
    reference = baseline(study, quiet=False)
    if reference is not None and reference.trial not in {r.trial for r in candidates}:
        candidates.append(reference)  # re-measured beside the front, so ratios compare alike
    done = study.user_attrs.get(QUIET_ATTR, {})
    rounds = settings.runtime.latency.quiet_rounds
    if not rounds or not candidates or {str(r.trial) for r in candidates} <= set(done):
        return
    artifact_name = RUNTIMES.get(settings.runtime.name).artifact_name
    artifacts = [
        Artifact(r.trial, artifact_name, *tracker.artifact(r.run_id, artifact_name))
        for r in candidates
    ]
    progress.message(
        f"re-measuring {len(artifacts)} candidates (front and baseline) alone, "
        f"interleaved ({rounds} rounds)"
    )
    _start_ray(settings)
    request = RemeasureRequest(
        artifacts,
        settings.task,
        settings.runtime,
        settings.plugins,
        settings.cluster.exclusive_latency,
    )
    remote = ray.remote(num_cpus=settings.cluster.cpus_per_trial)(remeasure)
    result = ray.get(remote.remote(request))
    refusal = _hardware_refusal(settings, study, result.hardware)
    if refusal:
        progress.message(f"quiet phase not used: {refusal}")
        return
    quiet = {str(t): stats.as_metrics(QUIET) for t, stats in result.latency.items()}
    study.set_user_attr(QUIET_ATTR, quiet)
    for row in candidates:
        tracker.log_quiet_latency(row.run_id, quiet[str(row.trial)])


def _trial_run_ids(study: optuna.Study) -> list[str]:
    return [
        t.user_attrs[RUN_ID_ATTR]
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if RUN_ID_ATTR in t.user_attrs
    ]


def _quiet_libraries() -> None:
    """Keep the console for trial progress: library chatter goes to their own logs."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("mlflow", "alembic", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _sweep_lock(workdir: Path, name: str) -> Iterator[None]:
    """One driver per sweep: a second `slimsweep run` of the same sweep is refused."""
    path = workdir / f"{name}.lock"
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(
                f"sweep {name!r} is already being run by another driver ({path})"
            ) from None
        yield
