"""Whether a trial keeps the sweep's constraints: one rule for Optuna's samplers (each
trial's constraint values, set before it is told) and for every reader, so the model a
sampler learned to avoid is the one `pareto` marks infeasible."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Metrics = Mapping[str, float]


def violations(
    constraints: Sequence[Mapping[str, Any]], metrics: Metrics, baseline: Metrics | None
) -> list[float]:
    """One number per constraint, Optuna's convention: ≤ 0 where it is kept, else how far
    past its bound, as a fraction of the bound (so bytes and milliseconds weigh alike). A
    metric the trial never recorded (a trial stopped early) breaks its constraint."""
    out = []
    for constraint in constraints:
        upper = constraint.get("max") is not None
        bound = float(constraint["max"] if upper else constraint["min"])
        if constraint.get("of_baseline"):
            reference = (baseline or {}).get(constraint["metric"])
            if reference is None:  # no baseline yet: nothing to hold the trial to
                out.append(0.0)
                continue
            bound *= reference
        value = metrics.get(constraint["metric"])
        if value is None:
            out.append(1.0)
            continue
        past = value - bound if upper else bound - value
        out.append(past / abs(bound) if bound else past)
    return out


def feasible(
    constraints: Sequence[Mapping[str, Any]], metrics: Metrics, baseline: Metrics | None
) -> bool | None:
    """True or False; None when the sweep has no constraints."""
    if not constraints:
        return None
    return all(v <= 0 for v in violations(constraints, metrics, baseline))


class Constrainable(Protocol):
    def set_constraint(self, key: str, value: float) -> None: ...


def constrain(
    trial: Constrainable,
    constraints: Sequence[Mapping[str, Any]],
    metrics: Metrics,
    baseline: Metrics | None,
) -> None:
    """Give the trial its constraint values, named as a user reads them, before it is told."""
    for constraint, value in zip(
        constraints, violations(constraints, metrics, baseline), strict=True
    ):
        trial.set_constraint(describe(constraint), value)


def describe(constraint: Mapping[str, Any]) -> str:
    """`accuracy >= 0.99 x baseline`, `size_bytes <= 2.097e+06`"""
    upper = constraint.get("max") is not None
    bound = constraint["max"] if upper else constraint["min"]
    scale = " x baseline" if constraint.get("of_baseline") else ""
    return f"{constraint['metric']} {'<=' if upper else '>='} {bound:g}{scale}"
