"""The YAML search space, checked against the stages' own configs, sampled define-by-run.

A recipe has ordered slots; each slot picks a registered stage (or "none") and that stage's
parameters. Every value a space can produce is tried against the stage's config before any
trial launches, so a bad range fails on the command line, not in the middle of a sweep.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from slimsweep.sweeps.errors import ConfigError

NO_STAGE = "none"
RUNTIME_PARAM = "runtime"  # a space's runtime choice, drawn before its recipe
RUNTIME_KEYS = {"choices", "settings"}
VARIANT = ":"  # `openvino_cpu:static`: a runtime with the settings the space gives that label
_EVERY_VALUE_UP_TO = 64
_SPEC_KEYS = ("choices", "low", "high", "step", "log", "value", "when")


class SuggestsParams(Protocol):
    """The part of `optuna.Trial` a space needs (FixedTrial satisfies it too)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int: ...


@dataclass(frozen=True)
class RecipeStep:
    """One applied stage: what the trial runs and what MLflow records."""

    slot: str
    stage: str
    params: dict[str, Any]

    def __str__(self) -> str:
        shown = (
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.stage}({', '.join(shown)})"


def describe_recipe(recipe: list[RecipeStep]) -> str:
    """The recipe in one line, as tables and MLflow show it."""
    return " → ".join(str(step) for step in recipe) or "baseline (no compression)"


@dataclass(frozen=True)
class Param:
    """A leaf of the space: fixed, a choice, or a numeric range; maybe conditional."""

    name: str  # "slot.key", the Optuna parameter name
    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    value: Any = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def searched(self) -> bool:
        return self.choices is not None or self.low is not None

    def candidates(self) -> list[Any]:
        """Values that span what this leaf can produce, for checking against a stage config:
        every value of a short integer range (a check across two keys, as heads dividing
        hidden, may refuse one inside it), else a range's two ends."""
        if self.choices is not None:
            return list(self.choices)
        if self.low is not None:
            if all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
                values = range(self.low, self.high + 1, self.step or 1)
                if len(values) <= _EVERY_VALUE_UP_TO:
                    return list(values)
            return [self.low, self.high]
        return [self.value]

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.low is not None:
            return isinstance(value, int | float) and self.low <= value <= self.high
        return value == self.value

    def suggest(self, trial: SuggestsParams) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.low is None:
            return self.value
        if all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Slot:
    name: str
    stage: Param
    params: tuple[Param, ...]

    def configurations(self, stage: str) -> list[dict[str, Any]]:
        """Every set of params this slot can hand `stage` (a range by its two ends), for
        checks that need whole configs. A condition on another slot may hold or not."""
        combos: list[dict[str, Any]] = [{}]
        for param in self.params:
            if stage not in _stages_param_applies_to(self.stage, param):
                continue
            grown = []
            for chosen in combos:
                holds = self._condition_holds(param, stage, chosen)
                if holds is not False:
                    grown += [{**chosen, param.key: value} for value in param.candidates()]
                if holds is not True:
                    grown.append(chosen)
            combos = list({repr(sorted(c.items())): c for c in grown}.values())
        return combos

    def _condition_holds(self, param: Param, stage: str, chosen: dict[str, Any]) -> bool | None:
        """Whether `param` exists under `chosen`; None when that depends on another slot."""
        holds: bool | None = True
        for ref, values in param.when:
            if ref == self.stage.name:
                value: Any = stage
            elif ref.startswith(f"{self.name}."):
                value = chosen.get(ref.removeprefix(f"{self.name}."), _ABSENT)
            else:
                holds = None
                continue
            if value not in values:
                return False
        return holds


@dataclass(frozen=True)
class Space:
    name: str
    slots: tuple[Slot, ...]
    enqueue: tuple[dict[str, Any], ...] = ()
    baseline: dict[str, Any] | None = None  # the uncompressed reference recipe, run first
    runtime: Param | None = None  # the runtimes a trial may target, when the space chooses

    def sample(self, trial: SuggestsParams) -> list[RecipeStep]:
        """Ask the trial for exactly the parameters that exist under the values drawn so far
        (the runtime first, when the space chooses it: `runtime_of` reads it back)."""
        if self.runtime is not None:
            self.runtime.suggest(trial)
        chosen: dict[str, Any] = {}
        recipe = []
        for slot in self.slots:
            stage = slot.stage.suggest(trial)
            chosen[slot.stage.name] = stage
            if stage == NO_STAGE:
                continue
            params = {}
            for param in slot.params:
                if all(chosen.get(ref, _ABSENT) in values for ref, values in param.when):
                    chosen[param.name] = params[param.key] = param.suggest(trial)
            recipe.append(RecipeStep(slot.name, stage, params))
        return recipe

    def searched_params(self) -> dict[str, Param]:
        leaves = [p for slot in self.slots for p in (slot.stage, *slot.params)]
        return {p.name: p for p in (*leaves, self.runtime) if p is not None and p.searched}

    def runtime_of(self, params: Mapping[str, Any]) -> str | None:
        """The runtime a draw targets; None when the sweep's own runtime runs every trial."""
        return None if self.runtime is None else params[RUNTIME_PARAM]


_ABSENT = object()


def parse_space(
    node: Mapping[str, Any],
    stage_configs: Mapping[str, type],
    runtimes: tuple[str, ...] = (),
    default_runtime: str | None = None,
) -> Space:
    """Build a Space from the `space` config node; `stage_configs` maps stage name → config
    type, `runtimes` names those a `runtime: {choices: [...]}` may list. An enqueued recipe
    or the baseline that names no runtime targets `default_runtime` (the sweep's own)."""
    _require_keys("space", node, ("name", "recipe", "baseline", "enqueue", RUNTIME_PARAM))
    recipe = node.get("recipe") or {}
    if not isinstance(recipe, Mapping) or not recipe:
        raise ConfigError("space.recipe must map slot names to stages; it is empty")
    accepts: dict[str, Callable[[Any], bool]] = {}
    slots = tuple(
        _parse_slot(slot_name, spec, stage_configs, accepts) for slot_name, spec in recipe.items()
    )
    runtime = _parse_runtime(node.get(RUNTIME_PARAM), runtimes)
    if runtime is not None and default_runtime not in runtime.choices:
        raise ConfigError(
            f"space.runtime.choices {list(runtime.choices)} must include runtime="
            f"{default_runtime}: the baseline runs there, and every latency is paired with "
            "its artifact"
        )
    space = Space(str(node.get("name", "space")), slots, runtime=runtime)
    enqueue = tuple(
        _check_enqueued(space, f"space.enqueue[{i}]", e, default_runtime)
        for i, e in enumerate(node.get("enqueue") or [])
    )
    baseline = node.get("baseline")
    if baseline is not None:
        baseline = _check_enqueued(space, "space.baseline", baseline, default_runtime)
        if runtime is not None and baseline[RUNTIME_PARAM] != default_runtime:
            raise ConfigError(
                f"space.baseline: runtime={baseline[RUNTIME_PARAM]}; the baseline runs on the "
                f"sweep's runtime ({default_runtime}), whose artifact every latency is paired with"
            )
    return Space(space.name, space.slots, enqueue, baseline, runtime)


def runtime_name(choice: str) -> str:
    """The registered runtime a space's runtime choice runs on: `openvino_cpu:static` is
    `openvino_cpu` with the settings the space gives that choice."""
    return choice.partition(VARIANT)[0]


def _parse_runtime(spec: Any, runtimes: tuple[str, ...]) -> Param | None:
    """`runtime: {choices: [ort_cpu, torch_cpu, openvino_cpu:static], settings: {...}}`: the
    runtime becomes a dimension; `settings` gives a choice its runtime keys."""
    if spec is None:
        return None
    choices = spec.get("choices") if isinstance(spec, Mapping) else None
    if not isinstance(choices, list | tuple) or not choices or not set(spec) <= RUNTIME_KEYS:
        raise ConfigError(
            f"space.runtime must be {{choices: [runtime, ...], settings: {{choice: {{key: "
            f"value}}}}}}; got {spec!r} (the sweep's one runtime is the config group `runtime=`)"
        )
    for name in choices:
        if not isinstance(name, str) or runtime_name(name) not in runtimes:
            raise ConfigError(
                f"space.runtime.choices: unknown runtime {name!r}; registered: "
                f"{', '.join(runtimes)} (a variant is `<runtime>{VARIANT}<label>`)"
            )
    if len(set(choices)) != len(choices):
        raise ConfigError("space.runtime.choices must not repeat a runtime")
    # settings of a choice an override left out stay unused; a label of no runtime is a typo
    settings = spec.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"space.runtime.settings must map a choice to its runtime keys; got {settings!r}"
        )
    unknown = [label for label in settings if runtime_name(str(label)) not in runtimes]
    if unknown:
        raise ConfigError(
            f"space.runtime.settings: {unknown} names no registered runtime "
            f"({', '.join(runtimes)}); label a choice `<runtime>{VARIANT}<label>`"
        )
    return Param(RUNTIME_PARAM, RUNTIME_PARAM, choices=tuple(choices))


def _parse_slot(
    slot_name: str,
    spec: Any,
    stage_configs: Mapping[str, type],
    accepts: dict[str, Callable[[Any], bool]],
) -> Slot:
    """`accepts` maps each parameter defined so far to a test of the values `when` may name:
    those the space can produce, or those its stage would take (so narrowing `choices` by an
    override leaves a condition inactive instead of wrong; a typo is still refused)."""
    where = f"space.recipe.{slot_name}"
    if not isinstance(spec, Mapping) or "stage" not in spec:
        raise ConfigError(f"{where} must be a mapping with a 'stage' key")
    stage = _parse_param(slot_name, "stage", spec["stage"], accepts)
    for name in stage.candidates():
        if name != NO_STAGE and name not in stage_configs:
            known = ", ".join(sorted(stage_configs))
            raise ConfigError(f"{where}.stage: unknown stage {name!r}; registered: {known}")
    accepts[stage.name] = lambda value: value == NO_STAGE or value in stage_configs
    params = []
    for key, param_spec in spec.items():
        if key == "stage":
            continue
        param = _parse_param(slot_name, key, param_spec, accepts)
        configs = [stage_configs[n] for n in _stages_param_applies_to(stage, param)]
        accepts[param.name] = functools.partial(_acceptable, param, configs)
        params.append(param)
    # Each value is tried together with the slot's fixed values, so checks that span two
    # keys of one stage see both.
    fixed = {p.key: p.value for p in params if not p.searched and not p.when}
    slot = Slot(slot_name, stage, tuple(params))
    drawn = {name: slot.configurations(name) for name in stage.candidates() if name != NO_STAGE}
    for param in params:
        for stage_name in _stages_param_applies_to(stage, param):
            others = {k: v for k, v in fixed.items() if k != param.key}
            combinations = drawn[stage_name]
            _check_against_stage(
                f"{where}.{param.key}",
                param,
                stage_name,
                stage_configs[stage_name],
                others,
                combinations,
            )
    _check_combinations(where, stage_configs, drawn)
    return slot


def _check_combinations(
    where: str, stage_configs: Mapping[str, type], drawn: dict[str, list[dict[str, Any]]]
) -> None:
    """Every combination of the slot's values (`drawn`, by stage) must make a config its
    stage takes (heads that do not divide the hidden size, say), so that none is ever drawn."""
    for stage_name, combinations in drawn.items():
        for params in combinations:
            try:
                stage_configs[stage_name](**params)
            except (ConfigError, TypeError, ValueError) as error:
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                raise ConfigError(
                    f"{where} (stage {stage_name}): the space can draw {shown}, which the stage "
                    f"refuses: {error}. Narrow the choices, or make a value exist only `when` "
                    "another allows it"
                ) from None


def _parse_param(
    slot: str, key: str, spec: Any, accepts: Mapping[str, Callable[[Any], bool]]
) -> Param:
    where = f"space.recipe.{slot}.{key}"
    name = f"{slot}.{key}"
    if not isinstance(spec, Mapping):
        return Param(name, key, value=spec)
    _require_keys(where, spec, _SPEC_KEYS)
    when = tuple(
        _parse_condition(where, slot, ref, v, accepts)
        for ref, v in (spec.get("when") or {}).items()
    )
    if "choices" in spec:
        choices = tuple(spec["choices"])
        if not choices or len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}.choices must be a non-empty list without repeats")
        return Param(name, key, choices=choices, when=when)
    if "low" in spec or "high" in spec:
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"{where} needs numeric low and high; got low={low!r} high={high!r}")
        if low > high:
            raise ConfigError(f"{where}: low={low} is greater than high={high}")
        step, log = spec.get("step"), bool(spec.get("log", False))
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise ConfigError(f"{where}.step={step!r} must be a positive number")
        if step is not None and step > high - low > 0:
            raise ConfigError(
                f"{where}.step={step} is wider than the range [{low}, {high}]: only {low} "
                "could ever be drawn"
            )
        if log and low <= 0:
            raise ConfigError(f"{where}: log=true needs low > 0; got low={low}")
        return Param(name, key, low=low, high=high, step=step, log=log, when=when)
    if "value" in spec:
        return Param(name, key, value=spec["value"], when=when)
    raise ConfigError(f"{where} needs one of: choices, low/high, value")


def _parse_condition(
    where: str, slot: str, ref: str, values: Any, accepts: Mapping[str, Callable[[Any], bool]]
) -> tuple[str, tuple[Any, ...]]:
    full = ref if "." in ref else f"{slot}.{ref}"
    if full not in accepts:
        raise ConfigError(
            f"{where}.when refers to {ref!r}, which is not a parameter defined before it"
        )
    values = tuple(values) if isinstance(values, list | tuple) else (values,)
    for value in values:
        if not accepts[full](value):
            raise ConfigError(f"{where}.when: {value!r} is not a value that {ref!r} can take")
    return full, values


def _stages_param_applies_to(stage: Param, param: Param) -> list[str]:
    candidates = stage.candidates()
    names = dict(param.when).get(stage.name, tuple(candidates))
    return [name for name in names if name != NO_STAGE and name in candidates]


def _acceptable(param: Param, configs: list[type], value: Any) -> bool:
    return param.contains(value) or any(_config_error(c, param.key, value) is None for c in configs)


def _config_error(
    config_type: type, key: str, value: Any, fixed: Mapping[str, Any] | None = None
) -> str | None:
    try:
        config_type(**{**(fixed or {}), key: value})
    except (ConfigError, TypeError, ValueError) as error:
        return str(error)
    return None


def _check_against_stage(
    where: str,
    param: Param,
    stage_name: str,
    config_type: type,
    fixed: Mapping[str, Any],
    combinations: list[dict[str, Any]],
) -> None:
    """Each value of `param`, tried with the slot's fixed values; a value refused there is
    still accepted if a combination the slot can draw takes it (a check that spans two
    searched keys, as heads dividing hidden, is `_check_combinations`' to make)."""
    allowed = [f.name for f in fields(config_type)]
    if param.key not in allowed:
        raise ConfigError(
            f"{where}: stage {stage_name!r} has no parameter {param.key!r}; "
            f"it has: {', '.join(allowed)}"
        )
    fixed = {k: v for k, v in fixed.items() if k in allowed}
    for value in param.candidates():
        error = _config_error(config_type, param.key, value, fixed)
        drawn_with = [c for c in combinations if c.get(param.key, _ABSENT) == value]
        if error is not None and not any(_builds(config_type, c) for c in drawn_with):
            raise ConfigError(f"{where} (stage {stage_name}): {error}")


def _builds(config_type: type, params: Mapping[str, Any]) -> bool:
    try:
        config_type(**params)
    except (ConfigError, TypeError, ValueError):
        return False
    return True


def _check_enqueued(
    space: Space, where: str, entry: Any, default_runtime: str | None
) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must map slots to {{param: value}}")
    slots = {slot: params for slot, params in entry.items() if slot != RUNTIME_PARAM}
    flat = {
        f"{slot}.{key}": value
        for slot, params in slots.items()
        for key, value in (params or {}).items()
    }
    if space.runtime is not None:
        flat[RUNTIME_PARAM] = entry.get(RUNTIME_PARAM, default_runtime)
    elif RUNTIME_PARAM in entry:
        raise ConfigError(f"{where}: names a runtime, and the space has no runtime choice")
    return check_params(space, where, flat)


def produces(space: Space, params: dict[str, Any]) -> bool:
    """Whether sampling the space can give exactly these parameters ("slot.key": value)."""
    try:
        check_params(space, "params", params)
    except ConfigError:
        return False
    return True


def check_params(space: Space, where: str, flat: dict[str, Any]) -> dict[str, Any]:
    """`flat` ("slot.key": value), checked to be one complete draw of the space."""
    import optuna

    searched = space.searched_params()
    for name, value in flat.items():
        if name not in searched:
            raise ConfigError(f"{where}: {name!r} is not a searched parameter of the space")
        if not searched[name].contains(value):
            raise ConfigError(f"{where}: {name}={value!r} is outside the space")
    probe = optuna.trial.FixedTrial(flat)
    try:
        space.sample(probe)
    except ValueError as error:
        raise ConfigError(f"{where} leaves a parameter unset: {error}") from None
    unused = set(flat) - set(probe.params)
    if unused:
        raise ConfigError(f"{where}: {sorted(unused)} do not exist under the other values given")
    return flat


def _require_keys(where: str, node: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in node:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
