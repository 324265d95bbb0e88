"""`slimsweep space`: a search space as a readable tree, with each parameter's condition,
the number of distinct recipes it can produce, the baseline and what runs first."""

from collections.abc import Iterator
from typing import Any

from slimsweep.sweeps.space import Param, RecipeStep, Space

MAX_DRAWS = 1_000_000  # past this many draws, the count is given as a lower bound


class _Branch(Exception):
    def __init__(self, name: str, values: list[Any]) -> None:
        self.name, self.values = name, values


class _Continuous(Exception):
    """A float range without a step: no count of recipes."""


class _Enumerating:
    """A trial that answers from `fixed` and branches on the first parameter it lacks."""

    def __init__(self, fixed: dict[str, Any]) -> None:
        self.fixed = fixed

    def _value(self, name: str, values: list[Any]) -> Any:
        if name not in self.fixed:
            raise _Branch(name, values)
        return self.fixed[name]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._value(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        return self._value(name, list(range(low, high + 1, kwargs.get("step") or 1)))

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        step = kwargs.get("step")
        if step is None:
            raise _Continuous
        count = int(round((high - low) / step)) + 1
        return self._value(name, [round(low + i * step, 10) for i in range(count)])


def recipes(space: Space) -> Iterator[tuple[dict[str, Any], list[RecipeStep]]]:
    """Every draw of the space (its params and recipe), depth first; `_Continuous` if a
    float range has no step."""
    pending: list[dict[str, Any]] = [{}]
    while pending:
        fixed = pending.pop()
        try:
            yield fixed, space.sample(_Enumerating(fixed))
        except _Branch as branch:
            pending += [{**fixed, branch.name: v} for v in reversed(branch.values)]


def count_recipes(space: Space) -> str:
    """How many distinct recipes (stage defaults filled in) the space produces."""
    from slimsweep.sweeps.engine.repeats import recipe_key

    keys: set[str] = set()
    try:
        for draws, (params, recipe) in enumerate(recipes(space)):
            if draws >= MAX_DRAWS:
                return f"more than {len(keys):,}"
            keys.add(recipe_key(recipe, space.runtime_of(params)))
    except _Continuous:
        return "continuous"
    return f"{len(keys):,}"


def _values(param: Param) -> str:
    if param.choices is not None:
        return " | ".join(_show(c) for c in param.choices)
    if param.low is not None:
        step = f" step {param.step:g}" if param.step is not None else " (continuous)"
        return f"{param.low:g} .. {param.high:g}{step}{' log' if param.log else ''}"
    return f"{_show(param.value)} (fixed)"


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition(param: Param, slot: str) -> str:
    parts = []
    for ref, values in param.when:
        name = ref.removeprefix(f"{slot}.")
        shown = _show(values[0]) if len(values) == 1 else f"[{', '.join(map(_show, values))}]"
        parts.append(f"{name}={shown}" if len(values) == 1 else f"{name} in {shown}")
    return f"when {' and '.join(parts)}" if parts else ""


def describe_space(space: Space, runtime: str, first: list[dict[str, Any]]) -> str:
    lines = [f"space {space.name!r} (runtime {runtime}): {count_recipes(space)} distinct recipes"]
    rows: list[tuple[str, str]] = []
    if space.runtime is not None:  # drawn first; latencies paired with `runtime`'s baseline
        rows.append((f"runtime: {_values(space.runtime)}", ""))
    for slot in space.slots:
        rows.append((f"{slot.name}", ""))
        rows.append((f"  stage: {_values(slot.stage)}", ""))
        for param in slot.params:
            rows.append((f"    {param.key}: {_values(param)}", _condition(param, slot.name)))
    width = max(len(text) for text, _ in rows)
    lines += [f"{text.ljust(width)}  {cond}".rstrip() for text, cond in rows]
    if space.baseline is not None:
        lines.append(f"baseline: {_params(space.baseline)}")
    queued = [*space.enqueue, *first]
    if queued:
        lines.append("run first (after the baseline):")
        lines += [f"  {_params(params)}" for params in queued]
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in params.items())
