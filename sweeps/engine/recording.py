"""Recording a trial: MLflow first, then Optuna, so a told trial always has its run and
artifact logged. A failure is recorded with its reason, and the sweep goes on."""

import optuna
from optuna.trial import FrozenTrial

from slimsweep.compressors.architecture import arch_summary
from slimsweep.sweeps.config import Settings
from slimsweep.sweeps.engine.bench import paired_estimate
from slimsweep.sweeps.engine.trial import TrialResult
from slimsweep.sweeps.errors import last_line
from slimsweep.sweeps.progress import LineProgress
from slimsweep.sweeps.results.feasibility import constrain
from slimsweep.sweeps.results.keys import (
    ARCH_ATTR,
    ARCH_TAG,
    ARTIFACT_ATTR,
    BASELINE_ATTR,
    FAILURE_ATTR,
    HARDWARE_ATTR,
    METRICS_ATTR,
    NODES_ATTR,
    PHASES_ATTR,
    RECIPE_ATTR,
    REFERENCE_LATENCY_ATTR,
    REFUSED_ATTR,
    REUSED_BY_TAG,
    REUSED_FROM_ATTR,
    RUN_ID_ATTR,
    SAVED_BYTES_PREFIX,
    SEEDED_FROM_ATTR,
    STOPPED_EARLY_ATTR,
    STOPPED_EARLY_TAG,
    WARNINGS_TAG,
)
from slimsweep.sweeps.results.rows import baseline_metrics, read_results
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
        arch = next(filter(None, (arch_summary(s.stage, s.params) for s in recipe)), None)
        if arch is not None:  # searchable in MLflow: tags.`slimsweep.arch` = 'L4 H256 A8 I1024'
            trial.set_user_attr(ARCH_ATTR, arch)
            self.tracker.tag(run_id, ARCH_TAG, arch)
        if trial.params == self.settings.space.baseline:
            trial.set_user_attr(BASELINE_ATTR, True)
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.progress.started(trial.number, summary)
        return run_id

    def record(self, trial: optuna.Trial, run_id: str, result: TrialResult) -> str | None:
        """Record the trial; returns why it failed (one line), or None."""
        if result.stopped_early is not None:
            self.stop_early(trial, run_id, result)
            return None
        reason = result.error or self.hardware_refusal(result.hardware)
        if reason is not None:
            return self.fail(trial, run_id, reason)
        reference = self.study.user_attrs.get(
            REFERENCE_LATENCY_ATTR, result.metrics["baseline_latency_ms_median"]
        )
        # A slot whose stage was `none` saved nothing; every slot's figure exists.
        unused = {f"{SAVED_BYTES_PREFIX}{slot.name}": 0.0 for slot in self.settings.space.slots}
        metrics = {**unused, **result.metrics, **paired_estimate(result.metrics, reference)}
        names = self.settings.metric_names()
        missing = [name for name in names if name not in metrics]
        if missing:
            recorded = ", ".join(sorted(metrics))
            return self.fail(
                trial, run_id, f"the trial recorded no {', '.join(missing)} ({recorded})"
            )
        values = [metrics[name] for name in names]
        try:
            inputs = {  # what the artifact takes: names, dtypes, shapes (dynamic axes named)
                name: {"dtype": str(rows.dtype), "shape": result.input_shapes.get(name, [])}
                for name, rows in result.example_inputs.items()
            }
            details = {
                "hardware": result.hardware,
                "measured_as": result.measured_as,
                "nodes": result.nodes,
                "phases": result.phases,
                "inputs": inputs,
            }
            example = (result.example_inputs, result.example_outputs)
            self.tracker.finish_trial(
                run_id,
                metrics,
                result.artifact_name,
                result.artifact,
                result.sha256,
                details,
                example if result.example_inputs else None,
                result.splits,
            )
        except Exception as error:
            return self.fail(trial, run_id, f"recording the trial failed: {error!r}")
        for warning in result.warnings:
            self.progress.warning(f"trial {trial.number}: {warning}")
        if result.warnings:
            self.tracker.tag(run_id, WARNINGS_TAG, "\n".join(result.warnings))
        trial.set_user_attr(METRICS_ATTR, metrics)
        trial.set_user_attr(ARTIFACT_ATTR, result.artifact_name)
        trial.set_user_attr(PHASES_ATTR, result.phases)
        trial.set_user_attr(NODES_ATTR, result.nodes)
        self.constrain(trial, metrics)
        self.study.tell(trial, values)
        # The first recorded trial's baseline median scales every later trial's ratio, so that
        # all of the sweep's figures are on one scale.
        if REFERENCE_LATENCY_ATTR not in self.study.user_attrs:
            self.study.set_user_attr(REFERENCE_LATENCY_ATTR, reference)
        results = read_results(self.study, quiet=False)
        self.progress.finished(trial.number, dict(zip(names, values, strict=True)), results)
        return None

    def reuse(self, trial: optuna.Trial, original: FrozenTrial) -> None:
        """A repeated recipe, answered from the trial that computed it: Optuna is told that
        trial's values, nothing is compressed again, and its MLflow run is tagged with every
        trial it answered."""
        for attr in (RECIPE_ATTR, METRICS_ATTR, ARTIFACT_ATTR, RUN_ID_ATTR):
            if attr in original.user_attrs:
                trial.set_user_attr(attr, original.user_attrs[attr])
        trial.set_user_attr(REUSED_FROM_ATTR, original.number)
        answered = [
            t.number
            for t in self.study.get_trials(deepcopy=False)
            if t.user_attrs.get(REUSED_FROM_ATTR) == original.number
        ]
        run_id = original.user_attrs.get(RUN_ID_ATTR)
        if run_id and SEEDED_FROM_ATTR not in original.user_attrs:  # not another sweep's run
            self.tracker.tag(run_id, REUSED_BY_TAG, ", ".join(map(str, sorted(answered))))
        recipe = original.user_attrs.get(RECIPE_ATTR, "")
        if original.state == optuna.trial.TrialState.PRUNED:  # it would stop again
            trial.set_user_attr(STOPPED_EARLY_ATTR, original.user_attrs.get(STOPPED_EARLY_ATTR))
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.constrain(trial, original.user_attrs.get(METRICS_ATTR, {}))
            self.study.tell(trial, original.values)
        self.progress.settled(
            trial.number,
            f"trial {trial.number} repeats the recipe of trial {original.number} ({recipe}): "
            f"answered from it ({original.state.name}), not run again",
        )

    def constrain(self, trial: optuna.Trial, metrics: dict[str, float]) -> None:
        """The sweep's constraints on this trial, where samplers learn from them; those
        relative to the baseline against its figures (its own, on the baseline)."""
        baseline = metrics if trial.user_attrs.get(BASELINE_ATTR) else baseline_metrics(self.study)
        constrain(trial, self.settings.constraint_specs(), metrics, baseline)

    def stop_early(self, trial: optuna.Trial, run_id: str, result: TrialResult) -> None:
        """A trial that fine-tuning stopped: PRUNED in Optuna with the reason and the
        qualities it read (Optuna keeps no intermediate values for several objectives); its
        MLflow run ends KILLED, tagged with the reason."""
        reason = result.stopped_early or ""
        readings = [[step, quality] for step, quality in result.reports]
        trial.set_user_attr(STOPPED_EARLY_ATTR, {"reason": reason, "readings": readings})
        self.tracker.tag(run_id, STOPPED_EARLY_TAG, reason)
        read = ", ".join(f"step {step}: {quality:.4g}" for step, quality in readings)
        self.tracker.fail_trial(
            run_id, f"stopped early: {reason}\nquality read: {read}", status="KILLED"
        )
        self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        self.progress.settled(trial.number, f"trial {trial.number} stopped early: {reason}")

    def refuse(self, trial: optuna.Trial, recipe: list[RecipeStep], reason: str) -> None:
        """A draw its runtime cannot realise: PRUNED with the reason, before anything runs
        (no MLflow run: there is nothing to show)."""
        trial.set_user_attr(RECIPE_ATTR, describe_recipe(recipe))
        trial.set_user_attr(REFUSED_ATTR, reason)
        self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        self.progress.settled(trial.number, f"trial {trial.number} refused: {reason}")

    def fail(self, trial: optuna.Trial, run_id: str, reason: str) -> str:
        self.tracker.fail_trial(run_id, reason)
        what = last_line(reason)
        trial.set_user_attr(FAILURE_ATTR, what[:1000])
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.progress.failed(trial.number, what)
        return what

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
