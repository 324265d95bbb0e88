"""Choosing one model off the front: within the user's bounds, then best or the knee."""

from dataclasses import dataclass

import numpy as np

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.rows import SweepResults, TrialRow


@dataclass(frozen=True)
class Bound:
    metric: str
    limit: float
    upper: bool  # True: metric <= limit; False: metric >= limit

    def holds(self, row: TrialRow) -> bool:
        return self.miss(row) == 0.0

    def miss(self, row: TrialRow) -> float:
        """How far `row` is from meeting the bound, relative to the limit (0 when it does)."""
        value = row.value(self.metric)
        if value is None:
            return float("inf")
        over = value - self.limit if self.upper else self.limit - value
        return max(over, 0.0) / (abs(self.limit) or 1.0)

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.upper else '>='} {self.limit:g}"


@dataclass(frozen=True)
class Choice:
    row: TrialRow
    reason: str


def choose(results: SweepResults, bounds: list[Bound], knee: bool) -> Choice:
    """The model to deploy off the front, and why; an impossible request is an error that
    says what failed."""
    rows = results.front
    known = set(results.objectives) | {m for r in rows for m in r.metrics}
    for bound in bounds:
        if bound.metric not in known:
            raise SweepError(
                f"bound on unknown metric {bound.metric!r}; known: {', '.join(sorted(known))}"
            )
    meeting = [r for r in rows if all(b.holds(r) for b in bounds)]
    wanted = " and ".join(str(b) for b in bounds) or "no bounds"
    if not meeting:
        closest = min(rows, key=lambda r: (sum(b.miss(r) for b in bounds), r.trial))
        missed = ", ".join(str(b) for b in bounds if not b.holds(closest))
        raise SweepError(
            f"no model on the front of {results.name!r} meets {wanted}; the closest, "
            f"trial {closest.trial}, misses {missed}"
        )
    scope = (
        f"{len(meeting)} of {len(rows)} front models meet {wanted}"
        if bounds
        else f"all {len(rows)} front models are candidates (no bounds)"
    )
    if knee and len(meeting) > 2:
        row, distance = _knee(results, meeting)
        return Choice(
            row,
            f"{scope}; trial {row.trial} is the knee: closest to the ideal point "
            f"once each objective is scaled to [0, 1] over them (distance {distance:.3f})",
        )
    first = next(iter(results.objectives))
    row = results.sorted_by(meeting, first)[0]
    note = " (--knee needs at least 3)" if knee else ""
    return Choice(row, f"{scope}; trial {row.trial} has the best {first} among them{note}")


def _knee(results: SweepResults, rows: list[TrialRow]) -> tuple[TrialRow, float]:
    directions = results.objectives
    values = np.array([[r.values[n] for n in directions] for r in rows], dtype=float)
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    goodness = (values - low) / span  # 1 = best for maximized objectives
    for column, up in enumerate(directions.values()):
        if not up:
            goodness[:, column] = 1.0 - goodness[:, column]
    distances = np.linalg.norm(1.0 - goodness, axis=1)
    best = int(np.argmin(distances))
    return rows[best], float(distances[best])
