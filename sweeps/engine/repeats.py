"""A recipe is computed once per sweep. A proposal whose resolved recipe (every stage's
defaults filled in) equals a completed trial's is answered from that trial; one equal to a
running trial's waits for it, and runs itself only if that trial fails. The task is the
sweep's own, and so is the runtime unless the space chooses it: then it is part of the key."""

import dataclasses
import json
from collections import defaultdict
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimsweep.sweeps.results.keys import RECIPE_KEY_ATTR, REFUSED_ATTR, REUSED_FROM_ATTR
from slimsweep.sweeps.space import RecipeStep, Space

ANSWERING = (TrialState.COMPLETE, TrialState.PRUNED)  # what a repeat is answered from


def recipe_key(recipe: list[RecipeStep], runtime: str | None = None) -> str:
    """The recipe as its stages will run it, on `runtime` when the space chooses one: a
    value equal to a stage's default, or a slot name, does not make two recipes different."""
    from slimsweep.compressors import STAGES

    steps = [
        [step.stage, dataclasses.asdict(STAGES.get(step.stage).config_type(**step.params))]
        for step in recipe
    ]
    if runtime is not None:
        steps.append(["runtime", runtime])
    return json.dumps(steps, sort_keys=True, default=str)


class Repeats:
    """The sweep's computed and running recipes, by key."""

    def __init__(self, study: optuna.Study, space: Space) -> None:
        self.computed: dict[str, FrozenTrial] = {}  # completed, or stopped early (PRUNED)
        for trial in study.get_trials(deepcopy=False, states=ANSWERING):
            # a refused draw computed nothing (and its runtime may take it after an upgrade)
            if not {REUSED_FROM_ATTR, REFUSED_ATTR} & set(trial.user_attrs):
                self.computed.setdefault(_key_of(trial, space), trial)
        self.running: set[str] = set()
        self.waiting: dict[str, list[Any]] = defaultdict(list)

    def answered_by(self, key: str) -> FrozenTrial | None:
        return self.computed.get(key)

    def wait_or_run(self, key: str, waiter: Any) -> bool:
        """True if the recipe is running already (`waiter` waits for it); else it is now."""
        if key in self.running:
            self.waiting[key].append(waiter)
            return True
        self.running.add(key)
        return False

    def done(self, key: str, trial: FrozenTrial | None) -> list[Any]:
        """The recipe ended, computed or stopped early by `trial` (None: it failed, and may
        succeed on another try); the waiters it leaves."""
        self.running.discard(key)
        if trial is not None:
            self.computed.setdefault(key, trial)
        return self.waiting.pop(key, [])


def _key_of(trial: FrozenTrial, space: Space) -> str:
    """A trial's key: recorded when it was asked, or (an older sweep's) from its params; a
    trial this space can no longer draw (a changed space) is keyed apart from any other."""
    if RECIPE_KEY_ATTR in trial.user_attrs:
        return trial.user_attrs[RECIPE_KEY_ATTR]
    try:
        recipe = space.sample(optuna.trial.FixedTrial(trial.params))
        return recipe_key(recipe, space.runtime_of(trial.params))
    except (ValueError, TypeError):
        return f"unreachable trial {trial.number}"
