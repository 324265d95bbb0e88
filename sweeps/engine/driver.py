"""The driver: asks Optuna for recipes, runs them as Ray tasks, tells Optuna what they
measured, then runs the quiet phase and tags the front. It alone opens the study and the
tracking store; workers only return what they measured."""

import contextlib
import functools
import gc
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from slimsweep.sweeps.config import Settings, runtime_refusal
from slimsweep.sweeps.engine.baseline import ShippedBaseline, baseline_file
from slimsweep.sweeps.engine.keepalive import Keepalive
from slimsweep.sweeps.engine.lease import DriverLease
from slimsweep.sweeps.engine.quiet_phase import remeasure_front
from slimsweep.sweeps.engine.ray_pool import Abandoned, RayPool
from slimsweep.sweeps.engine.recording import Recorder
from slimsweep.sweeps.engine.repeats import ANSWERING, Repeats, recipe_key
from slimsweep.sweeps.engine.study import (
    build_sampler,
    finished_count,
    interrupted_trials,
    open_existing,
    open_storage,
    open_study,
)
from slimsweep.sweeps.engine.trial import (
    Compressed,
    MeasureRequest,
    TrialRequest,
    TrialResult,
    compress_trial,
    measure_trial,
    run_trial,
)
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.readers.descriptions import front_description, trial_description
from slimsweep.sweeps.readers.links import view_tags
from slimsweep.sweeps.readers.plots import front_html, front_png
from slimsweep.sweeps.results.keys import (
    BASELINE_SHA_ATTR,
    BASELINE_SHA_TAG,
    FAILURE_ATTR,
    FINISHED_ATTR,
    PENDING_RUN,
    RECIPE_KEY_ATTR,
    REFUSED_ATTR,
    SEEDED_FROM_ATTR,
    SENT_RUNS_ATTR,
)
from slimsweep.sweeps.results.rows import baseline_metrics, read_results
from slimsweep.sweeps.results.spool import SpoolingTracker
from slimsweep.sweeps.results.tracking import Tracker


def run_sweep(settings: Settings, progress: LineProgress | None = None) -> optuna.Study:
    """Run the sweep to `search.n_trials` finished trials; safe to call again to resume.

    Ctrl-C, or a baseline that fails, stops it: the trials in flight are marked failed (their
    recipes run again on resume) and the sweep's run ends KILLED. A sweep in which every trial
    failed is an error once it has ended."""
    progress = progress or LineProgress()
    _quiet_libraries()
    build_sampler(settings.search.sampler)  # a wrong sampler is refused before Ray starts
    workdir = Path(settings.sweep.dir)
    scratch = Path(tempfile.gettempdir()) / f"slimsweep-{settings.sweep.name}-{os.getpid()}"
    try:
        with _driver_lease(settings) as keepalive:
            lease = keepalive.lease
            if lease.replaced is not None:
                progress.warning(f"took the sweep over from a driver that died ({lease.replaced})")
            # Ray starts (seconds) while the study and the tracking store are set up beside it
            with ThreadPoolExecutor(max_workers=1) as background:
                opening = background.submit(_open, settings, progress)
                pool = _pool(settings)
                study, tracker, storage = opening.result()
            keepalive.storage = storage
            recorder = Recorder(settings, study, tracker, progress)
            finished = finished_count(study)
            remaining = settings.search.n_trials - finished
            progress.message(
                f"sweep {settings.sweep.name!r}: {finished} trials finished, "
                f"{max(remaining, 0)} to run; stores in {workdir}"
            )
            if remaining > 0:
                baseline = _ship_baseline(settings, pool, study, tracker, progress, scratch)
                progress.begin(remaining)
                running = _Running(settings, study, recorder, pool, scratch, keepalive, baseline)
                _run_or_stop(running, remaining)
            _send_spooled(settings, tracker)
            failure = remeasure_front(settings, study, tracker, recorder, progress)
            if failure:
                progress.warning(f"{QUIET_FAILED} ({failure}); {IN_SWEEP_NUMBERS}")
            _finish(study, tracker, finished=True)
            study.set_user_attr(FINISHED_ATTR, True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _refuse_all_failed(study)
    return study


REFUSALS_PER_TRIAL = 10  # refused draws not counted toward n_trials, per trial to run


@dataclass(frozen=True)
class _Running:
    """A sweep's trials under way: what runs them, records them and keeps the lease."""

    settings: Settings
    study: optuna.Study
    recorder: Recorder
    pool: RayPool
    scratch: Path
    keepalive: Keepalive
    baseline: ShippedBaseline

    @functools.cached_property
    def worker(self) -> WorkerSpec:
        """What every trial's worker sets up: built once, not per trial."""
        return self.settings.worker_spec(self.scratch)

    @functools.cached_property
    def cache_dir(self) -> str:
        return str(Path(self.settings.sweep.cache_dir).resolve())


def _run_or_stop(running: "_Running", remaining: int) -> None:
    """The trials, run; on Ctrl-C or a failed baseline, the trials in flight are stopped and
    marked failed. A driver that lost its lease leaves them to the driver that took it."""
    study, tracker, pool = running.study, running.recorder.tracker, running.pool
    stop_with: BaseException | None = None
    try:
        _run_trials(running, remaining)
    except Abandoned:
        pool.cancel()
        raise SweepError(
            f"this driver went silent for over sweep.lease_s={running.settings.sweep.lease_s} s "
            "and another driver took the sweep over; its trials are that driver's now"
        ) from None
    except KeyboardInterrupt:
        stop_with = KeyboardInterrupt()
    except Exception as error:
        if isinstance(error, BaselineFailed):
            stop_with = error
        elif _while_interrupted(error):
            stop_with = KeyboardInterrupt()
        else:
            raise
    if stop_with is None:
        return
    # Out of the except block, the interrupted store call's frames are free: collected, they
    # give back the connection (and SQLite's write lock) that Ctrl-C left mid-transaction.
    gc.collect()
    _stop(study, tracker, pool)
    raise stop_with


def _while_interrupted(error: BaseException) -> bool:
    """A store's cleanup that failed because Ctrl-C landed inside its statement (SQLite:
    "database is locked") replaces the KeyboardInterrupt; it is still the user's stop."""
    seen = error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _stop(study: optuna.Study, tracker: SpoolingTracker, pool: RayPool) -> None:
    """The trials in flight end failed (their recipes run again on resume), and the sweep's
    run ends KILLED; in MLflow only if it answers and nothing waits in the spool (the next
    run of the sweep closes those runs after sending the spool)."""
    pool.cancel()
    interrupted_trials(study)
    try:
        if tracker.flush() or tracker.server_away():
            return
        tracker.close_interrupted_trials("the sweep was stopped before it finished")
        _finish(study, tracker, finished=False)
    except Exception:  # MLflow's side only: the next run of the sweep closes these runs
        return


class BaselineFailed(SweepError):
    """Every trial is compared with the baseline: without it, the sweep cannot go on."""


def _open(
    settings: Settings, progress: LineProgress
) -> tuple[optuna.Study, Tracker, optuna.storages.RDBStorage]:
    """The study (and its storage) and the tracking store, ready: views described, trials a
    dead driver left running marked failed and queued again."""
    storage = open_storage(
        settings.sweep.storage,
        heartbeat_s=settings.sweep.heartbeat_s,
        grace_s=settings.sweep.lease_s,
    )
    study = open_study(settings, storage)
    if settings.search.seed_from:
        seeded = sum(SEEDED_FROM_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))
        progress.message(f"{seeded} results taken from sweep {settings.search.seed_from!r}")
    study.set_user_attr(FINISHED_ATTR, False)  # until this driver reaches the end
    tracker = _tracker(settings, study)
    tracker.flush()  # what a driver spooled before it stopped, sent before anything else
    tracker.log_sweep_config(settings.resolved)
    objectives = [o.direction == "maximize" for o in settings.search.objectives]
    directions = dict(zip(settings.metric_names(), objectives, strict=True))
    tracker.describe_experiment(view_tags(directions, tracker.sweep_run_id))
    for stale in interrupted_trials(study):
        progress.warning(f"trial {stale.number} was interrupted; its recipe will run again")
    tracker.close_interrupted_trials(
        "the driver stopped before this trial finished; its recipe is run again"
    )
    return study, tracker, storage


def _refuse_all_failed(study: optuna.Study) -> None:
    results = read_results(study)
    if not results.rows and results.failed:
        last = next(t for t in reversed(study.trials) if t.state == TrialState.FAIL)
        raise SweepError(
            f"every trial of sweep {study.study_name!r} failed ({results.failed}); the last "
            f"said: {last.user_attrs.get(FAILURE_ATTR, 'nothing')}"
        )


QUIET_FAILED = "quiet phase not used"
IN_SWEEP_NUMBERS = "the front keeps the latencies it had"


def remeasure_sweep(settings: Settings, progress: LineProgress) -> optuna.Study:
    """The quiet phase on demand (after an interrupted sweep, or to measure a front again):
    the front and the baseline re-measured alone and interleaved, then the front re-tagged
    and re-plotted. Refused while a driver runs the sweep."""
    with _driver_lease(settings):
        study = open_existing(settings.sweep.storage, settings.sweep.name)
        tracker = _tracker(settings, study)
        _send_spooled(settings, tracker)
        recorder = Recorder(settings, study, tracker, progress)
        failure = remeasure_front(settings, study, tracker, recorder, progress, again=True)
        _finish(study, tracker, finished=bool(study.user_attrs.get(FINISHED_ATTR, True)))
    if failure:
        raise SweepError(f"{QUIET_FAILED} ({failure}); {IN_SWEEP_NUMBERS}")
    return study


def _run_trials(running: "_Running", remaining: int) -> None:
    """Keep `search.parallelism` trials in flight until `remaining` have been asked and
    every one of them is answered; stop at once if the baseline fails. A repeated recipe is
    answered from the trial that computed it (or waits for the one computing it). With
    constraints relative to the baseline, the baseline runs alone first: trials asked
    before it completes are held until then."""
    settings, study, recorder = running.settings, running.study, running.recorder
    pool, keepalive = running.pool, running.keepalive
    repeats = Repeats(study, settings.space)
    held: list[tuple[optuna.Trial, list, str]] = []
    asked = refusals = 0
    # only a constraint relative to the baseline waits for it; once done, it stays done
    baseline_pending = any(c.of_baseline for c in settings.search.constraints)
    while asked < remaining or len(pool) or held:
        while len(pool) < settings.search.parallelism:
            keepalive.check()
            baseline_pending = baseline_pending and baseline_metrics(study) is None
            # (once nothing is in flight and nothing is left to ask, the baseline cannot come)
            alone = baseline_pending and (len(pool) > 0 or asked < remaining)
            if alone and len(pool):
                break  # the baseline runs alone until it is done
            if held and not alone:
                trial, recipe, key = held.pop(0)
            elif asked < remaining:
                trial, asked = study.ask(), asked + 1
                drawn = _drawn(running, trial)
                if drawn is None:
                    # a draw its runtime refused ran nothing: it does not count, up to a cap
                    told = study.get_trials(deepcopy=False)[trial.number]
                    refused = REFUSED_ATTR in told.user_attrs
                    refusals += refused
                    asked -= refused and refusals <= REFUSALS_PER_TRIAL * remaining
                    continue
                recipe, key = drawn
                if alone and trial.params != settings.space.baseline:
                    keepalive.running(trial)
                    held.append((trial, recipe, key))
                    continue
            else:
                break
            _answer_or_run(running, repeats, trial, recipe, key)
        if not len(pool):
            continue  # everything asked was answered, or is held for the baseline
        (trial, run_id, request, key), result, lost = pool.next_done(keepalive.lost)
        if isinstance(result, Compressed):
            measuring = MeasureRequest(request, result)
            pool.submit(
                (trial, run_id, request, key), measure_trial, measuring, settings.measure_options()
            )
            continue
        keepalive.check()  # a driver that lost the sweep tells Optuna and MLflow nothing
        reason = recorder.record(trial, run_id, result or TrialResult(trial.number, error=lost))
        keepalive.done(trial)
        if reason is not None and trial.params == settings.space.baseline:
            raise BaselineFailed(
                f"the baseline (trial {trial.number}) failed: {reason}. Every trial is "
                "compared with it, so the sweep stopped; fix it and run the same command again"
            )
        told = study.get_trials(deepcopy=False)[trial.number]
        answered = told if told.state in ANSWERING else None
        for waiter, waiter_recipe in repeats.done(key, answered):
            if answered is not None:
                recorder.reuse(waiter, answered)
                keepalive.done(waiter)
            elif not repeats.wait_or_run(key, (waiter, waiter_recipe)):
                _launch(running, waiter, waiter_recipe, key)  # it failed: this one tries


def _drawn(running: "_Running", trial: optuna.Trial) -> tuple[list, str] | None:
    """The trial's recipe and its key; None when the draw is one its stages refuse (the
    trial is recorded failed, with the reason, and the sweep goes on) or, in a space that
    chooses the runtime, one its runtime cannot realise (pruned, with the reason: the
    sampler learns to avoid it)."""
    space = running.settings.space
    recipe = space.sample(trial)
    runtime = space.runtime_of(trial.params)
    try:
        key = recipe_key(recipe, runtime)
    except (ValueError, TypeError) as error:
        run_id = running.recorder.start(trial, recipe)
        running.recorder.fail(trial, run_id, f"{type(error).__name__}: {error}")
        return None
    refusal = runtime_refusal(recipe, runtime) if runtime is not None else None
    if refusal is not None:
        running.recorder.refuse(trial, recipe, refusal)
        return None
    trial.set_user_attr(RECIPE_KEY_ATTR, key)
    return recipe, key


def _answer_or_run(
    running: "_Running", repeats: Repeats, trial: optuna.Trial, recipe: list, key: str
) -> None:
    """Answer a repeated recipe from its trial, wait for one that is running, or run it."""
    original = repeats.answered_by(key)
    if original is not None:
        running.recorder.reuse(trial, original)
        running.keepalive.done(trial)
        return
    running.keepalive.running(trial)
    if not repeats.wait_or_run(key, (trial, recipe)):
        _launch(running, trial, recipe, key)


def _launch(running: "_Running", trial: optuna.Trial, recipe: list, key: str) -> None:
    """Open the trial's run and send it to Ray: compressed and measured in one task, or
    compressed anywhere and measured on the hardware target."""
    settings = running.settings
    run_id = running.recorder.start(trial, recipe)
    worker = settings.trial_spec(running.worker, trial.params)
    request = TrialRequest(trial.number, recipe, worker, running.cache_dir, running.baseline)
    first = compress_trial if settings.cluster.measure_on else run_trial
    running.pool.submit(
        (trial, run_id, request, key), first, request, settings.cluster.compute_options()
    )


def _ship_baseline(
    settings: Settings,
    pool: RayPool,
    study: optuna.Study,
    tracker: Tracker,
    progress: LineProgress,
    scratch: Path,
) -> ShippedBaseline:
    """The baseline file trained (or taken from a cache) once for the sweep, by one task on a
    trial's resources; its bytes go to Ray's object store for the nodes that lack them, and
    its sha256 goes to the study and to the sweep's MLflow run."""
    import ray

    spec, cache_dir = settings.worker_spec(scratch), str(Path(settings.sweep.cache_dir).resolve())
    options = settings.cluster.compute_options()
    try:
        name, sha256, content = ray.get(pool.call(baseline_file, options, spec, cache_dir))
    except ray.exceptions.RayError as error:
        raise BaselineFailed(f"the baseline could not be trained or loaded: {error}") from None
    # owned by the driver: a node lost with the task that made it cannot take it along (a
    # re-run elsewhere might train other weights)
    content = ray.put(content)
    before = study.user_attrs.get(BASELINE_SHA_ATTR)
    if before is not None and before != sha256:
        progress.warning(
            f"the baseline file is not the one this sweep started with (sha256 {before[:12]} "
            f"now {sha256[:12]}: its cache was lost and it was trained again); trials before "
            "and after compare with different baselines"
        )
    study.set_user_attr(BASELINE_SHA_ATTR, sha256)
    tracker.tag(tracker.sweep_run_id, BASELINE_SHA_TAG, sha256)
    return ShippedBaseline(name, sha256, content)


def _pool(settings: Settings) -> RayPool:
    """Ray, started or joined, checked to have a node for every kind of task the sweep runs."""
    placements = {"trial": settings.cluster.compute_options()}
    if settings.cluster.measure_on:
        placements["measuring"] = settings.measure_options()
    return RayPool(settings.cluster, placements, settings.runtime_env())


def _tracker(settings: Settings, study: optuna.Study) -> SpoolingTracker:
    """The driver's MLflow: a trial's records wait under sweep.dir while a server is away."""

    def sent_late(number: int, run_id: str) -> None:
        study.set_user_attr(
            SENT_RUNS_ATTR, {**study.user_attrs.get(SENT_RUNS_ATTR, {}), str(number): run_id}
        )

    return SpoolingTracker(
        settings.tracking.uri,
        settings.tracking.artifact_root,
        settings.sweep.name,
        Path(settings.sweep.dir) / "spool" / settings.sweep.name,
        sent_late,
    )


def _send_spooled(settings: Settings, tracker: SpoolingTracker) -> None:
    """Every trial's records in MLflow before the front is tagged there, or a clear stop."""
    left = tracker.flush(wait_s=settings.tracking.spool_wait_s)
    if left:
        raise SweepError(
            f"the MLflow server at {settings.tracking.uri} has not answered for "
            f"tracking.spool_wait_s={settings.tracking.spool_wait_s} s; {left} records wait in "
            f"{tracker.folder} and are sent when this command runs again"
        )


def _finish(study: optuna.Study, tracker: Tracker, *, finished: bool) -> None:
    """Tag every trial run pareto=true/false and put the front's plots on the sweep's run;
    the sweep's run ends FINISHED, or KILLED when its driver never reached the end."""
    results = read_results(study)
    with tempfile.TemporaryDirectory(prefix="slimsweep-plots-") as scratch:
        plots = [Path(scratch) / "front.png", Path(scratch) / "front.html"]
        if results.front:
            front_png(results, plots[0])
            front_html(results, plots[1])
        # a trial whose run the server never created (a lost spool) has no run to tag, and
        # a result taken from another sweep keeps that sweep's tags
        rows = [
            r
            for r in results.rows
            if r.run_id and not r.run_id.startswith(PENDING_RUN) and not r.seeded_from
        ]
        tracker.finish_sweep(
            {r.run_id: results.on_front(r.trial) for r in rows},
            {r.run_id: trial_description(results, results.completed(r.trial)) for r in rows},
            front_description(results),
            plots if results.front else [],
            "FINISHED" if finished else "KILLED",
        )


def _quiet_libraries() -> None:
    """Keep the console for trial progress: library chatter goes to their own logs."""
    import mlflow  # noqa: F401  (it sets its own loggers' levels on import; this comes after)

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the driver records its trials' heartbeats itself (keepalive.py), without Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("mlflow", "alembic", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _driver_lease(settings: Settings) -> Iterator[Keepalive]:
    """One driver per sweep, on any host: the lease in the sweep's storage, refused (naming
    the driver that holds it) while another driver runs the sweep, and renewed until the
    driver lets it go."""
    workdir = Path(settings.sweep.dir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=workdir, prefix=".probe-")  # noqa: SIM115
        probe.close()
    except OSError as error:
        raise SweepError(
            f"sweep.dir {workdir} cannot be written ({error.strerror or error}); choose "
            "another with sweep.dir=..."
        ) from None
    lease = DriverLease(settings.sweep.storage, settings.sweep.name, settings.sweep.lease_s)
    lease.acquire()
    try:
        with Keepalive(lease, settings.sweep.heartbeat_s).beating() as keepalive:
            yield keepalive
    finally:
        with contextlib.suppress(Exception):  # it expires anyway; the sweep's own error wins
            lease.release()
