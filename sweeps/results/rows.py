"""A sweep's results, read from its study once: one row per completed trial, the front, the
baseline. Every reader (pareto, pick, export, report, plots, the live panel) takes these
rows; none of them reads Optuna's attributes itself."""

from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.feasibility import describe, feasible
from slimsweep.sweeps.results.keys import (
    ARCH_ATTR,
    ARTIFACT_ATTR,
    BASELINE_ATTR,
    CONSTRAINTS_ATTR,
    FINISHED_ATTR,
    HARDWARE_ATTR,
    METRICS_ATTR,
    PENDING_RUN,
    QUIET_ATTR,
    QUIET_SUFFIX,
    RECIPE_ATTR,
    REFUSED_ATTR,
    REUSED_FROM_ATTR,
    RUN_ID_ATTR,
    SEEDED_FROM_ATTR,
    SENT_RUNS_ATTR,
)
from slimsweep.sweeps.space import RUNTIME_PARAM

LATENCY_OBJECTIVES = ("latency_ms_median", "latency_ms_p10", "latency_ms_p90")


@dataclass(frozen=True)
class TrialRow:
    """One completed trial as a user reads it."""

    trial: int
    recipe: str
    params: dict[str, Any]
    values: dict[str, float]  # objective name → value (latency: quiet, if `remeasured`)
    metrics: dict[str, float]  # everything the trial measured (latency: quiet, if remeasured)
    run_id: str
    artifact: str = "model.onnx"  # file name of the artifact in its MLflow run
    baseline: bool = False  # the run of the space's baseline recipe
    remeasured: bool = False  # its latency comes from the quiet phase
    feasible: bool | None = None  # keeps the sweep's constraints (None: it has none)
    seeded_from: str = ""  # "sweep#trial" when the result was taken from another sweep
    runtime: str = ""  # the runtime the space chose for it ("": the sweep's one runtime)
    arch: str = ""  # its student architecture in one line ("": the teacher's)

    def value(self, metric: str) -> float | None:
        """An objective's value, or any other recorded metric."""
        return self.values.get(metric, self.metrics.get(metric))


@dataclass(frozen=True)
class SweepResults:
    name: str
    objectives: dict[str, bool]  # objective name → True where it is maximized
    rows: list[TrialRow]  # every completed trial, in-sweep numbers, by trial number
    front: list[TrialRow]  # non-dominated, best first by the first objective
    baseline: TrialRow | None  # with the quiet numbers when the front has them
    baseline_in_sweep: TrialRow | None = None  # the same run's in-sweep numbers
    states: dict[int, str] = field(default_factory=dict)  # every trial's Optuna state
    hardware: str = "unknown"
    finished: bool = True  # a driver ran the sweep to its end (quiet phase included)
    feasible_front: list[TrialRow] = field(default_factory=list)  # the same among feasible rows
    constraints: list[str] = field(default_factory=list)  # as a user reads them
    reused: dict[int, int] = field(default_factory=dict)  # repeat → the trial that answered it
    refused: dict[int, str] = field(default_factory=dict)  # trial → why its runtime could not
    showing_feasible: bool = False  # `front` is the feasible front

    @property
    def remeasured(self) -> bool:
        """The front's latencies come from a quiet phase, not from the sweep itself."""
        return bool(self.front) and all(r.remeasured for r in self.front)

    @property
    def latency_objectives(self) -> list[str]:
        """The objectives a quiet phase re-measures."""
        return [n for n in self.objectives if n in LATENCY_OBJECTIVES]

    @property
    def failed(self) -> int:
        return sum(state == TrialState.FAIL.name for state in self.states.values())

    @property
    def stopped_early(self) -> int:
        pruned = [n for n, state in self.states.items() if state == TrialState.PRUNED.name]
        return sum(n not in self.refused for n in pruned)

    def completed(self, number: int) -> TrialRow:
        """The completed trial `number`, or an error saying why it cannot be used."""
        if number not in self.states:
            last = max(self.states, default=-1)
            raise SweepError(f"sweep {self.name!r} has no trial {number} (it has 0-{last})")
        if number in self.reused:
            raise SweepError(
                f"trial {number} of {self.name!r} repeated the recipe of trial "
                f"{self.reused[number]}, which answered it: use trial {self.reused[number]}"
            )
        row = next((r for r in self.rows if r.trial == number), None)
        if row is None:
            raise SweepError(
                f"trial {number} of {self.name!r} is {self.states[number]}, not COMPLETE"
            )
        return next((r for r in self.front if r.trial == number), row)

    def on_front(self, number: int) -> bool:
        return any(r.trial == number for r in self.front)

    def feasible_only(self) -> "SweepResults":
        """These results with the front of the models that keep the constraints as the
        front, which every reader then shows."""
        return replace(self, front=self.feasible_front, showing_feasible=True)

    def baseline_for(self, row: TrialRow) -> TrialRow | None:
        """The baseline measured the way `row` was (in the quiet phase, or in the sweep)."""
        return self.baseline if row.remeasured else self.baseline_in_sweep

    def versus(self, row: TrialRow) -> dict[str, float]:
        """Per objective against the baseline measured the same way: the difference for one
        maximized (Δ accuracy), the ratio for one minimized (x smaller, x faster)."""
        baseline = self.baseline_for(row)
        if baseline is None:
            return {}
        reference = baseline.values
        return {
            name: row.values[name] - reference[name] if up else reference[name] / row.values[name]
            for name, up in self.objectives.items()
        }

    def sorted_by(self, rows: list[TrialRow], objective: str) -> list[TrialRow]:
        """Best first by `objective` (ties: lower trial number first)."""
        up = self.objectives[objective]
        return sorted(
            rows, key=lambda r: (-r.values[objective] if up else r.values[objective], r.trial)
        )


def objectives_of(study: optuna.Study) -> dict[str, bool]:
    """Objective name → True where it is maximized."""
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    return dict(zip(names, maximize, strict=True))


def read_results(study: optuna.Study, *, quiet: bool = True) -> SweepResults:
    """The sweep's rows. The front is taken on in-sweep numbers; when the quiet phase
    re-measured all of it (and `quiet`), its latencies are replaced by the quiet ones and the
    front is taken again among them."""
    objectives = objectives_of(study)
    trials = study.get_trials(deepcopy=False)
    late = study.user_attrs.get(SENT_RUNS_ATTR, {})
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    reused = {
        t.number: t.user_attrs[REUSED_FROM_ATTR]
        for t in complete
        if REUSED_FROM_ATTR in t.user_attrs
    }
    rows = [_row(t, list(objectives), late) for t in complete if t.number not in reused]
    in_sweep = next((r for r in rows if r.baseline), None)
    constraints = study.user_attrs.get(CONSTRAINTS_ATTR, [])
    reference = in_sweep.metrics if in_sweep else None
    rows = [replace(r, feasible=feasible(constraints, r.metrics, reference)) for r in rows]
    remeasured = study.user_attrs.get(QUIET_ATTR, {}) if quiet else {}
    front = _front(rows, objectives, remeasured)
    baseline = in_sweep  # quiet only beside a quiet front: a ratio never mixes the two
    quiet_front = bool(front) and all(r.remeasured for r in front)
    if quiet_front and in_sweep is not None and str(in_sweep.trial) in remeasured:
        baseline = _quiet(in_sweep, remeasured[str(in_sweep.trial)])
    first = next(iter(objectives))
    results = SweepResults(
        name=study.study_name,
        objectives=objectives,
        rows=rows,
        front=[],
        baseline=baseline,
        baseline_in_sweep=in_sweep,
        states={t.number: t.state.name for t in trials},
        hardware=str(study.user_attrs.get(HARDWARE_ATTR, "unknown")),
        finished=bool(study.user_attrs.get(FINISHED_ATTR, True)),
        constraints=[describe(c) for c in constraints],
        reused=reused,
        refused={
            t.number: t.user_attrs[REFUSED_ATTR] for t in trials if REFUSED_ATTR in t.user_attrs
        },
    )
    # rows shown with quiet numbers are judged on those numbers (against the baseline
    # measured the same way)
    quiet_reference = baseline.metrics if baseline is not None else None

    def judged(shown: list[TrialRow]) -> list[TrialRow]:
        return [
            replace(r, feasible=feasible(constraints, r.metrics, quiet_reference))
            if r.remeasured
            else r
            for r in shown
        ]

    kept = _front([r for r in rows if r.feasible is not False], objectives, remeasured)
    return replace(
        results,
        front=results.sorted_by(judged(front), first),
        feasible_front=results.sorted_by([r for r in judged(kept) if r.feasible], first),
    )


def baseline_metrics(study: optuna.Study) -> dict[str, float] | None:
    """What the sweep's baseline trial measured, once it has completed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(BASELINE_ATTR):
            return dict(trial.user_attrs.get(METRICS_ATTR, {}))
    return None


def _front(
    rows: list[TrialRow], objectives: dict[str, bool], remeasured: dict[str, Any]
) -> list[TrialRow]:
    """The non-dominated rows; taken again on quiet numbers once all of them have some."""
    candidates = non_dominated(rows, objectives)
    if candidates and all(str(r.trial) in remeasured for r in candidates):
        quiet = [_quiet(r, remeasured[str(r.trial)]) for r in candidates]
        candidates = non_dominated(quiet, objectives)
    return candidates


def _row(trial: FrozenTrial, names: list[str], late: dict[str, str]) -> TrialRow:
    """`late` holds the runs of trials recorded while the tracking server was away."""
    run_id = trial.user_attrs.get(RUN_ID_ATTR, "")
    return TrialRow(
        trial=trial.number,
        recipe=trial.user_attrs.get(RECIPE_ATTR, ""),
        params=dict(trial.params),
        values=dict(zip(names, trial.values, strict=True)),
        metrics=dict(trial.user_attrs.get(METRICS_ATTR, {})),
        run_id=late.get(str(trial.number), run_id) if run_id.startswith(PENDING_RUN) else run_id,
        artifact=trial.user_attrs.get(ARTIFACT_ATTR, "model.onnx"),
        baseline=bool(trial.user_attrs.get(BASELINE_ATTR)),
        seeded_from=_seeded(trial.user_attrs.get(SEEDED_FROM_ATTR)),
        runtime=str(trial.params.get(RUNTIME_PARAM, "")),
        arch=trial.user_attrs.get(ARCH_ATTR, ""),
    )


def _seeded(origin: dict[str, Any] | None) -> str:
    return f"{origin['sweep']}#{origin['trial']}" if origin else ""


def _quiet(row: TrialRow, quiet: dict[str, float]) -> TrialRow:
    measured = {k.removesuffix(QUIET_SUFFIX): v for k, v in quiet.items()}
    values = {n: measured.get(n, v) for n, v in row.values.items()}
    return replace(row, values=values, metrics={**row.metrics, **measured}, remeasured=True)


def non_dominated(rows: list[TrialRow], objectives: dict[str, bool]) -> list[TrialRow]:
    def score(row: TrialRow) -> list[float]:
        return [row.values[n] if up else -row.values[n] for n, up in objectives.items()]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    scores = [score(r) for r in rows]
    return [
        r for r, s in zip(rows, scores, strict=True) if not any(dominates(o, s) for o in scores)
    ]
