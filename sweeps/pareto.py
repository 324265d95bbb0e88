"""The Pareto front of a sweep, from the study alone, and its table."""

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

RECIPE_ATTR = "recipe"
METRICS_ATTR = "metrics"
RUN_ID_ATTR = "mlflow_run_id"
# Study attribute: {trial number: latency metrics of the last quiet re-measurement, "_quiet"}.
QUIET_ATTR = "quiet_latency"
QUIET = "_quiet"


@dataclass(frozen=True)
class FrontRow:
    trial: int
    recipe: str
    values: dict[str, float]  # objective name → value
    metrics: dict[str, float]  # everything the trial measured (latency: quiet, if remeasured)
    run_id: str
    remeasured: bool = False


def front(study: optuna.Study, *, quiet: bool = True) -> list[FrontRow]:
    """The non-dominated completed trials, best first by the first objective.

    Optuna's front over the in-sweep numbers gives the candidates; when the quiet phase
    re-measured all of them, their latencies are replaced by the quiet ones and the front is
    taken again among them.
    """
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    remeasured = study.user_attrs.get(QUIET_ATTR, {}) if quiet else {}
    candidates = study.best_trials
    use_quiet = bool(candidates) and all(str(t.number) in remeasured for t in candidates)
    rows = []
    for t in candidates:
        metrics = dict(t.user_attrs.get(METRICS_ATTR, {}))
        values = dict(zip(names, t.values, strict=True))
        if use_quiet:
            quiet_metrics = {k.removesuffix(QUIET): v for k, v in remeasured[str(t.number)].items()}
            metrics.update(quiet_metrics)
            values.update({n: quiet_metrics[n] for n in names if n in quiet_metrics})
        rows.append(
            FrontRow(
                trial=t.number,
                recipe=t.user_attrs.get(RECIPE_ATTR, ""),
                values=values,
                metrics=metrics,
                run_id=t.user_attrs.get(RUN_ID_ATTR, ""),
                remeasured=use_quiet,
            )
        )
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    rows = non_dominated(rows, maximize)
    return sorted(
        rows, key=lambda r: (next(iter(r.values.values())), -r.trial), reverse=maximize[0]
    )


def non_dominated(rows: list[FrontRow], maximize: list[bool]) -> list[FrontRow]:
    def score(row: FrontRow) -> list[float]:
        return [v if up else -v for v, up in zip(row.values.values(), maximize, strict=True)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    scores = [score(r) for r in rows]
    return [
        r for r, s in zip(rows, scores, strict=True) if not any(dominates(o, s) for o in scores)
    ]


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
    header = [
        "trial",
        "recipe",
        *(_column_title(n, rows[0].remeasured) for n in names),
        "mlflow run",
    ]
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


def _column_title(name: str, remeasured: bool) -> str:
    if name == "size_bytes":
        return "size KiB"
    if name == "latency_ms_median":
        return "latency ms, quiet (p10-p90)" if remeasured else "latency ms (p10-p90)"
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
