"""What a sweep runs before its sampler proposes anything: the recipes users try first, and
the results of an earlier sweep of the same task and runtime, taken over without running
them again."""

from typing import Any

import optuna
from optuna.trial import TrialState

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.feasibility import constrain
from slimsweep.sweeps.results.keys import (
    HARDWARE_ATTR,
    METRICS_ATTR,
    REFERENCE_LATENCY_ATTR,
    REUSED_FROM_ATTR,
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
    return tries


def seed_from(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    source_name: str,
    space: Space,
    constraints: list[dict[str, Any]],
) -> int:
    """Copy the completed trials of sweep `source_name` (same storage, task and runtime) that
    this space can produce into a study that has no trials yet, held to this sweep's
    `constraints`; returns how many."""
    if study.user_attrs.get(SEEDED_SWEEP_ATTR) == source_name:
        return 0  # seeded when the sweep started
    if study.get_trials(deepcopy=False):
        raise SweepError(
            f"search.seed_from={source_name}: sweep {study.study_name!r} already has trials; "
            "a sweep is seeded only when it starts"
        )
    try:
        source = optuna.load_study(study_name=source_name, storage=storage)
    except KeyError:
        raise SweepError(f"search.seed_from={source_name}: no such sweep in this storage") from None
    for attr, what in ((RUNTIME_ATTR, "runtime"), (SEARCHED_ATTR, "task")):
        theirs, ours = source.user_attrs.get(attr), study.user_attrs.get(attr)
        if attr == SEARCHED_ATTR:
            theirs, ours = (theirs or {}).get("task"), (ours or {}).get("task")
        if theirs != ours:
            raise SweepError(
                f"search.seed_from={source_name}: that sweep ran another {what}; its results "
                "would not compare with this one's"
            )
    baseline = baseline_metrics(source)
    copied = 0
    for trial in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if REUSED_FROM_ATTR in trial.user_attrs or not produces(space, trial.params):
            continue
        study.enqueue_trial(trial.params)  # asked and told here: Optuna's own bookkeeping
        seeded = study.ask()
        space.sample(seeded)
        origin = {"sweep": source_name, "trial": trial.number}
        for key, value in {**trial.user_attrs, SEEDED_FROM_ATTR: origin}.items():
            seeded.set_user_attr(key, value)
        metrics = trial.user_attrs.get(METRICS_ATTR, {})
        constrain(seeded, constraints, metrics, baseline)
        study.tell(seeded, trial.values)
        copied += 1
    for attr in (REFERENCE_LATENCY_ATTR, HARDWARE_ATTR):  # latencies on the source's scale
        if attr in source.user_attrs:
            study.set_user_attr(attr, source.user_attrs[attr])
    study.set_user_attr(SEEDED_SWEEP_ATTR, source_name)
    return copied
