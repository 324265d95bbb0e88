"""The driver's side of the quiet phase: after the trials (or on demand, `slimsweep
remeasure`), the front's candidates and the baseline are re-measured alone and interleaved
on one node, and the front then uses those numbers. Whatever goes wrong here (a changed
artifact, a runtime that fails to load, a lost worker) comes back as one reason: the
in-sweep numbers stand and the sweep still ends normally."""

import optuna

from slimsweep.sweeps.config import Settings
from slimsweep.sweeps.engine.ray_pool import RayPool
from slimsweep.sweeps.engine.recording import Recorder
from slimsweep.sweeps.engine.remeasure import Artifact, RemeasureRequest, remeasure
from slimsweep.sweeps.errors import last_line
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.results.keys import QUIET_ATTR, QUIET_SUFFIX
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.results.tracking import Tracker


def remeasure_front(
    settings: Settings,
    study: optuna.Study,
    tracker: Tracker,
    recorder: Recorder,
    progress: LineProgress,
    *,
    again: bool = False,
) -> str | None:
    """Re-measure the front if it has not been (or `again`); the reason if that failed."""
    results = read_results(study, quiet=False)
    candidates = list(results.front)  # and the front of the models that keep the constraints
    candidates += [r for r in results.feasible_front if not results.on_front(r.trial)]
    if results.baseline is not None and not results.on_front(results.baseline.trial):
        candidates.append(results.baseline)  # measured beside the front: ratios compare alike
    done = study.user_attrs.get(QUIET_ATTR, {})
    rounds = settings.runtime.latency.quiet_rounds
    measured = not again and {str(r.trial) for r in candidates} <= set(done)
    if not rounds or not candidates or measured:
        return None
    progress.message(
        f"re-measuring {len(candidates)} candidates (front and baseline) alone, "
        f"interleaved ({rounds} rounds)"
    )
    try:
        artifacts = [
            Artifact(
                r.trial,
                r.artifact,
                *tracker.artifact(r.run_id, r.artifact),
                settings.runtimes.get(r.runtime),
            )
            for r in candidates
        ]
        request = RemeasureRequest(artifacts, settings.worker_spec())
        pool = RayPool(
            settings.cluster, {"measuring": settings.measure_options()}, settings.runtime_env()
        )
        result, lost = pool.run(remeasure, request, settings.measure_options())
        failure = lost or result.error or recorder.hardware_refusal(result.hardware)
        if not failure:
            quiet = {str(t): stats.as_metrics(QUIET_SUFFIX) for t, stats in result.latency.items()}
            for row in candidates:  # (a result taken from another sweep: its run is theirs)
                if not row.seeded_from:
                    tracker.log_quiet_latency(row.run_id, quiet[str(row.trial)])
            study.set_user_attr(QUIET_ATTR, quiet)  # one phase: numbers comparable together
    except Exception as error:  # the stores or Ray: the sweep's results must still be shown
        failure = f"{type(error).__name__}: {error}"
    return last_line(failure) if failure else None
