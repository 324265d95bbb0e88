"""The Pareto front of a sweep, from the study alone: rows, comparison with the baseline,
a table and JSON."""

import json
from dataclasses import asdict, dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

RECIPE_ATTR = "recipe"
METRICS_ATTR = "metrics"
RUN_ID_ATTR = "mlflow_run_id"
ARTIFACT_ATTR = "artifact"  # file name of the trial's artifact in its MLflow run
BASELINE_ATTR = "baseline"  # set on the trial that ran the space's baseline recipe
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


def objectives(study: optuna.Study) -> dict[str, bool]:
    """Objective name → True where it is maximized."""
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    return dict(zip(names, maximize, strict=True))


def _row(trial: FrozenTrial, names: list[str], quiet: dict[str, float] | None) -> FrontRow:
    metrics = dict(trial.user_attrs.get(METRICS_ATTR, {}))
    values = dict(zip(names, trial.values, strict=True))
    if quiet is not None:
        quiet_metrics = {k.removesuffix(QUIET): v for k, v in quiet.items()}
        metrics.update(quiet_metrics)
        values.update({n: quiet_metrics[n] for n in names if n in quiet_metrics})
    return FrontRow(
        trial=trial.number,
        recipe=trial.user_attrs.get(RECIPE_ATTR, ""),
        values=values,
        metrics=metrics,
        run_id=trial.user_attrs.get(RUN_ID_ATTR, ""),
        remeasured=quiet is not None,
    )


def front(study: optuna.Study, *, quiet: bool = True) -> list[FrontRow]:
    """The non-dominated completed trials, best first by the first objective.

    Optuna's front over the in-sweep numbers gives the candidates; when the quiet phase
    re-measured all of them, their latencies are replaced by the quiet ones and the front is
    taken again among them.
    """
    names = list(objectives(study))
    remeasured = study.user_attrs.get(QUIET_ATTR, {}) if quiet else {}
    candidates = study.best_trials
    use_quiet = bool(candidates) and all(str(t.number) in remeasured for t in candidates)
    rows = [_row(t, names, remeasured[str(t.number)] if use_quiet else None) for t in candidates]
    return sort_rows(non_dominated(rows, list(objectives(study).values())), study, names[0])


def baseline(study: optuna.Study, *, quiet: bool = True) -> FrontRow | None:
    """The completed run of the space's baseline recipe, with quiet numbers if it has them."""
    remeasured = study.user_attrs.get(QUIET_ATTR, {}) if quiet else {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(BASELINE_ATTR):
            return _row(trial, list(objectives(study)), remeasured.get(str(trial.number)))
    return None


def versus(row: FrontRow, reference: FrontRow, study: optuna.Study) -> dict[str, float]:
    """Per objective: the difference for one maximized (Δ accuracy), the ratio for one
    minimized (x smaller, x faster: reference / row)."""
    return {
        name: row.values[name] - reference.values[name]
        if up
        else reference.values[name] / row.values[name]
        for name, up in objectives(study).items()
    }


def sort_rows(rows: list[FrontRow], study: optuna.Study, by: str) -> list[FrontRow]:
    """Best first by objective `by` (ties: lower trial number first)."""
    up = objectives(study)[by]
    return sorted(rows, key=lambda r: (-r.values[by] if up else r.values[by], r.trial))


def non_dominated(rows: list[FrontRow], maximize: list[bool]) -> list[FrontRow]:
    def score(row: FrontRow) -> list[float]:
        return [v if up else -v for v, up in zip(row.values.values(), maximize, strict=True)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    scores = [score(r) for r in rows]
    return [
        r for r, s in zip(rows, scores, strict=True) if not any(dominates(o, s) for o in scores)
    ]


def front_json(study: optuna.Study, rows: list[FrontRow]) -> str:
    reference = baseline(study)
    return json.dumps(
        {
            "sweep": study.study_name,
            "objectives": [
                {"metric": n, "direction": "maximize" if up else "minimize"}
                for n, up in objectives(study).items()
            ],
            "baseline": asdict(reference) if reference else None,
            "front": [
                {**asdict(r), "versus_baseline": versus(r, reference, study) if reference else None}
                for r in rows
            ],
        },
        indent=2,
    )


def format_front(
    study: optuna.Study, rows: list[FrontRow] | None = None, title: str | None = None
) -> str:
    rows = front(study) if rows is None else rows
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    heading = (
        f"Pareto front of sweep {study.study_name!r}: {len(rows)} of {completed} completed "
        f"trials ({failed} failed)"
    )
    title = heading if title is None else title
    if not rows:
        return f"{title}\n(no completed trials yet)"
    reference = baseline(study)
    if reference is not None:
        title += f"\nbaseline: trial {reference.trial}, {_summary(reference)}"
    directions = objectives(study)
    header = ["trial", "recipe"]
    header += [_column_title(n, up, rows[0].remeasured) for n, up in directions.items()]
    header.append("mlflow run")
    body = []
    for r in rows:
        compared = versus(r, reference, study) if reference else {}
        cells = [
            _cell(n, r.values[n], r.metrics) + _change(compared.get(n), up)
            for n, up in directions.items()
        ]
        body.append([str(r.trial), r.recipe, *cells, r.run_id])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    return "\n".join([title, lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _summary(row: FrontRow) -> str:
    return ", ".join(f"{_title(n)} {_cell(n, v, row.metrics)}" for n, v in row.values.items())


def _title(name: str) -> str:
    return {"size_bytes": "size KiB", "latency_ms_median": "latency ms"}.get(name, name)


def _column_title(name: str, up: bool, remeasured: bool) -> str:
    title = _title(name)
    if name == "latency_ms_median":
        title += (", quiet" if remeasured else "") + " [95% CI]"
    return f"{title} ({'Δ' if up else 'x better'})"


def describe_change(compared: float, up: bool, difference: str = "+.4g") -> str:
    """Against the baseline: the difference of a maximized objective, the ratio of another."""
    return f"{compared:{difference}}" if up else f"{compared:.2f}x"


def _change(compared: float | None, up: bool) -> str:
    return "" if compared is None else f" ({describe_change(compared, up, '+.4f')})"


def _cell(name: str, value: float, metrics: dict[str, float]) -> str:
    if name == "size_bytes":
        return f"{value / 1024:.1f}"
    if name == "latency_ms_median":
        low = metrics.get("latency_ms_ci95_low", value)
        high = metrics.get("latency_ms_ci95_high", value)
        return f"{value:.3f} [{low:.3f}-{high:.3f}]"
    if name == "param_count":
        return f"{value:,.0f}"
    return f"{value:.4f}"
