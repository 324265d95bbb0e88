"""`slimsweep pareto`: the front as a table against the baseline, or as JSON."""

import json
from dataclasses import asdict

from slimsweep.sweeps.results.rows import SweepResults, TrialRow


def front_json(results: SweepResults, rows: list[TrialRow]) -> str:
    reference = results.baseline
    return json.dumps(
        {
            "sweep": results.name,
            "objectives": [
                {"metric": n, "direction": "maximize" if up else "minimize"}
                for n, up in results.objectives.items()
            ],
            "finished": results.finished,
            "baseline": asdict(reference) if reference else None,
            "front": [
                {**asdict(r), "versus_baseline": results.versus(r) if reference else None}
                for r in rows
            ],
        },
        indent=2,
    )


def format_front(
    results: SweepResults, rows: list[TrialRow] | None = None, title: str | None = None
) -> str:
    rows = results.front if rows is None else rows
    which = "Front of the feasible models" if results.showing_feasible else "Pareto front"
    stopped = f", {results.stopped_early} stopped early" if results.stopped_early else ""
    stopped += f", {len(results.refused)} refused by their runtime" if results.refused else ""
    heading = (
        f"{which} of sweep {results.name!r}: {len(rows)} of {len(results.rows)} completed "
        f"trials ({results.failed} failed{stopped})"
    )
    title = heading if title is None else title
    if not results.finished:
        title += f"\n{UNFINISHED}"
    if not rows:
        return f"{title}\n(no completed trials yet)"
    reference = results.baseline
    if reference is not None:
        title += f"\nbaseline: trial {reference.trial}, {_summary(reference)}"
    if results.constraints:
        kept = sum(bool(r.feasible) for r in results.rows)
        title += (
            f"\nconstraints: {'; '.join(results.constraints)} ({kept} of {len(results.rows)} "
            "completed trials keep them)"
        )
    directions = results.objectives
    runtimes = any(r.runtime for r in rows)  # the space chose the runtime: say which ran
    header = ["trial", *(["runtime"] if runtimes else []), "recipe"]
    header += [_column_title(n, up, rows[0].remeasured) for n, up in directions.items()]
    header += ["feasible"] if results.constraints else []
    header.append("mlflow run")
    body = []
    for r in rows:
        compared = results.versus(r)
        cells = [
            _cell(n, r.values[n], r.metrics)
            + _change(results, r, n, compared.get(n), up)
            + (" *" if n in results.latency_objectives and not r.remeasured else "")
            for n, up in directions.items()
        ]
        feasible = ["yes" if r.feasible else "no"] if results.constraints else []
        chosen = [r.runtime] if runtimes else []
        body.append([str(r.trial), *chosen, r.recipe, *cells, *feasible, r.run_id])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    table = [title, lines[0], "  ".join("-" * w for w in widths), *lines[1:]]
    if results.latency_objectives and not all(r.remeasured for r in rows):
        table.append(not_remeasured(results.name, "* "))
    return "\n".join(table)


UNFINISHED = "UNFINISHED: its driver stopped early or is still running; the front may change"


def not_remeasured(sweep: str, marker: str = "") -> str:
    """What a latency that no quiet phase re-measured is, and how to re-measure it."""
    return (
        f"{marker}latency measured during the sweep, paired with the baseline's artifact (ratio "
        f"to it x the sweep's reference), not re-measured alone: `slimsweep remeasure {sweep}`"
    )


def _summary(row: TrialRow) -> str:
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


def in_brackets(compared: float | None, up: bool, difference: str = "+.4g") -> str:
    """A change against the baseline to follow a value: ` (+0.0056)`, ` (2.49x)`, or none."""
    return "" if compared is None else f" ({describe_change(compared, up, difference)})"


def _change(
    results: SweepResults, row: TrialRow, name: str, compared: float | None, up: bool
) -> str:
    return " (≈)" if _within_interval(results, row, name) else in_brackets(compared, up, "+.4f")


def _within_interval(results: SweepResults, row: TrialRow, name: str) -> bool:
    """The baseline's latency lies inside this row's 95 % interval: the change is noise."""
    baseline = results.baseline_for(row)
    if name != "latency_ms_median" or baseline is None or baseline.trial == row.trial:
        return False
    low, high = row.metrics.get("latency_ms_ci95_low"), row.metrics.get("latency_ms_ci95_high")
    return low is not None and high is not None and low <= baseline.values[name] <= high


def _cell(name: str, value: float, metrics: dict[str, float]) -> str:
    if name == "size_bytes":
        return f"{value / 1024:.1f}"
    if name == "latency_ms_median":
        low = metrics.get("latency_ms_ci95_low", value)
        high = metrics.get("latency_ms_ci95_high", value)
        return f"{value:.4g} [{low:.4g}-{high:.4g}]"
    if name == "param_count":
        return f"{value:,.0f}"
    return f"{value:.4f}"
