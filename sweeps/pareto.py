"""The Pareto front of a sweep, from the study alone, and its table."""

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

RECIPE_ATTR = "recipe"
METRICS_ATTR = "metrics"
RUN_ID_ATTR = "mlflow_run_id"


@dataclass(frozen=True)
class FrontRow:
    trial: int
    recipe: str
    values: dict[str, float]  # objective name → value
    metrics: dict[str, float]  # everything the trial measured
    run_id: str


def front(study: optuna.Study) -> list[FrontRow]:
    """Optuna's non-dominated completed trials, best first by the first objective."""
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    rows = [
        FrontRow(
            trial=t.number,
            recipe=t.user_attrs.get(RECIPE_ATTR, ""),
            values=dict(zip(names, t.values, strict=True)),
            metrics=t.user_attrs.get(METRICS_ATTR, {}),
            run_id=t.user_attrs.get(RUN_ID_ATTR, ""),
        )
        for t in study.best_trials
    ]
    first = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return sorted(rows, key=lambda r: (next(iter(r.values.values())), -r.trial), reverse=first)


def format_front(study: optuna.Study) -> str:
    rows = front(study)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    title = (
        f"Pareto front of sweep {study.study_name!r}: {len(rows)} of {completed} completed "
        f"trials ({failed} failed)"
    )
    if not rows:
        return f"{title}\n(no completed trials yet)"
    names = list(rows[0].values)
    header = ["trial", "recipe", *(_column_title(n) for n in names), "mlflow run"]
    body = [
        [str(r.trial), r.recipe, *(_cell(n, r.values[n], r.metrics) for n in names), r.run_id]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    return "\n".join([title, lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _column_title(name: str) -> str:
    if name == "size_bytes":
        return "size KiB"
    if name == "latency_ms_median":
        return "latency ms (p10-p90)"
    return name


def _cell(name: str, value: float, metrics: dict[str, float]) -> str:
    if name == "size_bytes":
        return f"{value / 1024:.1f}"
    if name == "latency_ms_median":
        low, high = metrics.get("latency_ms_p10", value), metrics.get("latency_ms_p90", value)
        return f"{value:.3f} ({low:.3f}-{high:.3f})"
    if name == "param_count":
        return f"{value:,.0f}"
    return f"{value:.4f}"
