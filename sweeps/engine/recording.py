"""Recording a trial: MLflow first, then Optuna, so a told trial always has its run and
artifact logged. A failure is recorded with its reason, and the sweep goes on."""

import optuna

from slimsweep.sweeps.config import Settings
from slimsweep.sweeps.engine.trial import TrialResult
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.results.keys import (
    ARTIFACT_ATTR,
    BASELINE_ATTR,
    FAILURE_ATTR,
    HARDWARE_ATTR,
    METRICS_ATTR,
    PHASES_ATTR,
    RECIPE_ATTR,
    RUN_ID_ATTR,
)
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.results.tracking import Tracker
from slimsweep.sweeps.space import RecipeStep, describe_recipe


class Recorder:
    def __init__(
        self, settings: Settings, study: optuna.Study, tracker: Tracker, progress: LineProgress
    ) -> None:
        self.settings, self.study, self.tracker, self.progress = settings, study, tracker, progress

    def start(self, trial: optuna.Trial, recipe: list[RecipeStep]) -> str:
        """Open the trial's MLflow run; returns its id."""
        summary = describe_recipe(recipe)
        run_id = self.tracker.start_trial(
            trial.number, trial.params, summary, self.settings.resolved
        )
        trial.set_user_attr(RECIPE_ATTR, summary)
        if trial.params == self.settings.space.baseline:
            trial.set_user_attr(BASELINE_ATTR, True)
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.progress.started(trial.number, summary)
        return run_id

    def record(self, trial: optuna.Trial, run_id: str, result: TrialResult) -> None:
        reason = result.error or self._refusal(result)
        if reason is not None:
            self.fail(trial, run_id, reason)
            return
        names = self.settings.metric_names()
        values = [result.metrics[name] for name in names]
        try:
            details = {"hardware": result.hardware, "phases": result.phases}
            self.tracker.finish_trial(
                run_id,
                result.metrics,
                result.artifact_name,
                result.artifact,
                result.sha256,
                details,
            )
        except Exception as error:
            self.fail(trial, run_id, f"recording the trial failed: {error!r}")
            return
        trial.set_user_attr(METRICS_ATTR, result.metrics)
        trial.set_user_attr(ARTIFACT_ATTR, result.artifact_name)
        trial.set_user_attr(PHASES_ATTR, result.phases)
        self.study.tell(trial, values)
        results = read_results(self.study, quiet=False)
        self.progress.finished(trial.number, dict(zip(names, values, strict=True)), results)

    def fail(self, trial: optuna.Trial, run_id: str, reason: str) -> None:
        self.tracker.fail_trial(run_id, reason)
        last_line = reason.strip().splitlines()[-1]
        trial.set_user_attr(FAILURE_ATTR, last_line[:1000])
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.progress.failed(trial.number, last_line)

    def _refusal(self, result: TrialResult) -> str | None:
        missing = [n for n in self.settings.metric_names() if n not in result.metrics]
        if missing:
            recorded = ", ".join(sorted(result.metrics))
            return f"the trial recorded no {', '.join(missing)} (it recorded: {recorded})"
        return self.hardware_refusal(result.hardware)

    def hardware_refusal(self, hardware: str) -> str | None:
        """Latencies from two hardware targets must not meet in one objective, unless allowed."""
        if not hardware:
            return None
        expected = self.study.user_attrs.get(HARDWARE_ATTR)
        if expected is None:
            self.study.set_user_attr(HARDWARE_ATTR, hardware)
            return None
        if hardware == expected or self.settings.search.allow_mixed_hardware:
            return None
        return (
            f"latency measured on {hardware!r}, but this sweep's latencies come from "
            f"{expected!r}; set search.allow_mixed_hardware=true to mix them in one objective"
        )
