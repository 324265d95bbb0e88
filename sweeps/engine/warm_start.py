"""What a sweep runs before its sampler proposes anything: the recipes users try first, and
the results of an earlier sweep of the same task and runtime, taken over without running
them again."""

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimsweep.sweeps.config import Settings, runtime_refusal
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.repeats import recipe_key
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.feasibility import constrain
from slimsweep.sweeps.results.keys import (
    ARCH_ATTR,
    ARTIFACT_ATTR,
    BASELINE_ATTR,
    BASELINE_SHA_ATTR,
    HARDWARE_ATTR,
    METRICS_ATTR,
    RECIPE_ATTR,
    RECIPE_KEY_ATTR,
    REFERENCE_LATENCY_ATTR,
    REUSED_FROM_ATTR,
    RUN_ID_ATTR,
    RUNTIME_ATTR,
    SEARCHED_ATTR,
    SEEDED_FROM_ATTR,
)
from slimsweep.sweeps.results.rows import baseline_metrics
from slimsweep.sweeps.space import Space, produces

# What users reach for first, as values of a `quantize` stage: each runs on the baseline's
# other slots, where the space can produce it.
FIRST_TRIES: tuple[dict[str, Any], ...] = (
    {"precision": "fp16"},
    {"precision": "int8_dynamic", "per_channel": True},
    {"precision": "int8_static", "per_channel": True, "calibration": "minmax"},
)
SEEDED_SWEEP_ATTR = "seeded_from_sweep"  # on the study: the sweep whose results it took


def first_tries(space: Space) -> list[dict[str, Any]]:
    """The FIRST_TRIES that this space can produce, as Optuna parameters."""
    if space.baseline is None:
        return []
    searched = space.searched_params()
    tries = []
    for slot in space.slots:
        if "quantize" not in slot.stage.candidates():
            continue
        for values in FIRST_TRIES:
            params = dict(space.baseline)
            if slot.stage.searched:
                params[slot.stage.name] = "quantize"
            params.update(
                {f"{slot.name}.{k}": v for k, v in values.items() if f"{slot.name}.{k}" in searched}
            )
            if params != space.baseline and params not in tries and produces(space, params):
                tries.append(params)
    return [params for params in tries if not _refused(space, params)]


def _refused(space: Space, params: dict[str, Any]) -> bool:
    """Its runtime (the baseline's, in a space that chooses) cannot realise it."""
    runtime = space.runtime_of(params)
    recipe = space.sample(optuna.trial.FixedTrial(params))
    return runtime is not None and runtime_refusal(recipe, runtime) is not None


# What a seeded trial keeps of the source's: its recipe and what it measured, its run (to
# link to, never to write to) and whether it was the baseline. Nothing about how the source
# sweep ran it (requeues, repeats) comes along.
KEPT_ATTRS = (
    RECIPE_ATTR,
    RECIPE_KEY_ATTR,
    METRICS_ATTR,
    ARTIFACT_ATTR,
    RUN_ID_ATTR,
    BASELINE_ATTR,
    ARCH_ATTR,
)


def seed_from(study: optuna.Study, storage: optuna.storages.BaseStorage, settings: Settings) -> int:
    """Copy the completed trials of sweep `search.seed_from` (same storage, task and
    runtime) that this space produces as the same recipes into a study that has no trials
    of its own yet, told with this sweep's objectives and held to its constraints; returns
    how many. A copy cut short goes on where it stopped."""
    source_name = settings.search.seed_from
    where = f"search.seed_from={source_name}"
    already = {
        t.user_attrs[SEEDED_FROM_ATTR]["trial"]
        for t in study.get_trials(deepcopy=False)
        if SEEDED_FROM_ATTR in t.user_attrs
    }
    if study.user_attrs.get(SEEDED_SWEEP_ATTR) == source_name:
        return 0  # seeded when the sweep started
    if len(already) != len(study.get_trials(deepcopy=False)):
        raise SweepError(f"{where}: sweep {study.study_name!r} already ran trials of its own")
    try:
        source = optuna.load_study(study_name=source_name, storage=storage)
    except KeyError:
        raise SweepError(f"{where}: no such sweep in this storage") from None
    _require_comparable(source, study, settings, where)
    baseline = baseline_metrics(source)
    names, constraints, copied = settings.metric_names(), settings.constraint_specs(), 0
    for trial in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        metrics = trial.user_attrs.get(METRICS_ATTR, {})
        if trial.number in already or not _same_recipe(trial, settings.space):
            continue
        if REUSED_FROM_ATTR in trial.user_attrs or any(n not in metrics for n in names):
            continue
        study.enqueue_trial(trial.params)  # asked and told here: Optuna's own bookkeeping
        seeded = study.ask()
        settings.space.sample(seeded)
        for key in KEPT_ATTRS:
            if key in trial.user_attrs:
                seeded.set_user_attr(key, trial.user_attrs[key])
        seeded.set_user_attr(SEEDED_FROM_ATTR, {"sweep": source_name, "trial": trial.number})
        constrain(seeded, constraints, metrics, baseline)
        study.tell(seeded, [metrics[name] for name in names])
        copied += 1
    # latencies on the source's scale and hardware; its baseline file, to compare with ours
    for attr in (REFERENCE_LATENCY_ATTR, HARDWARE_ATTR, BASELINE_SHA_ATTR):
        if attr in source.user_attrs:
            study.set_user_attr(attr, source.user_attrs[attr])
    study.set_user_attr(SEEDED_SWEEP_ATTR, source_name)
    return copied


def _require_comparable(
    source: optuna.Study, study: optuna.Study, settings: Settings, where: str
) -> None:
    """Same task, runtime and (on this machine) hardware: else its numbers would not compare."""
    for attr, what in ((RUNTIME_ATTR, "runtime"), (SEARCHED_ATTR, "task")):
        theirs, ours = source.user_attrs.get(attr), study.user_attrs.get(attr)
        if attr == SEARCHED_ATTR:
            theirs, ours = (theirs or {}).get("task"), (ours or {}).get("task")
        if theirs != ours:
            raise SweepError(
                f"{where}: that sweep ran another {what}; its results would not compare with "
                "this one's"
            )
    measured_on = source.user_attrs.get(HARDWARE_ATTR)
    local = settings.cluster.address is None and not settings.cluster.measure_on
    if local and measured_on and measured_on != fingerprint():
        raise SweepError(
            f"{where}: that sweep's latencies come from {measured_on!r}, this machine is "
            f"{fingerprint()!r}; they would not share one objective"
        )


def _same_recipe(trial: FrozenTrial, space: Space) -> bool:
    """This space draws the trial's params, as the same recipe (its fixed values may differ)."""
    if not produces(space, trial.params):
        return False
    recipe = space.sample(optuna.trial.FixedTrial(trial.params))
    key = recipe_key(recipe, space.runtime_of(trial.params))
    return trial.user_attrs.get(RECIPE_KEY_ATTR, key) == key
