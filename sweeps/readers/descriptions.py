"""Markdown descriptions for the MLflow pages: each trial's recipe and objectives against
the baseline, and the sweep's front as a table (on its parent run and its experiment)."""

from slimsweep.sweeps.readers.pareto import (
    UNFINISHED,
    describe_change,
    in_brackets,
    not_remeasured,
)
from slimsweep.sweeps.results.rows import SweepResults, TrialRow


def trial_description(results: SweepResults, row: TrialRow) -> str:
    where = "on the Pareto front" if results.on_front(row.trial) else "not on the front"
    lines = [f"**{row.recipe}**", "", f"Trial {row.trial} of sweep `{results.name}`, {where}.", ""]
    return "\n".join([*lines, *objectives_table(results, row)])


def front_description(results: SweepResults) -> str:
    lines = [
        f"Pareto front of sweep `{results.name}`: {len(results.front)} of {len(results.rows)} "
        f"completed trials ({results.failed} failed). Measured on {results.hardware}.",
        "",
    ]
    if not results.finished:
        lines += [f"**{UNFINISHED}**", ""]
    names = list(results.objectives)
    lines += [
        "| trial | recipe | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for row in results.front:
        compared = results.versus(row)
        cells = [
            f"{row.values[n]:.6g}" + in_brackets(compared.get(n), up)
            for n, up in results.objectives.items()
        ]
        lines.append(f"| {row.trial} | {row.recipe} | " + " | ".join(cells) + " |")
    if results.latency_objectives and not results.remeasured:
        lines += ["", not_remeasured(results.name)]
    return "\n".join(lines)


def objectives_table(results: SweepResults, row: TrialRow) -> list[str]:
    """Markdown rows: each objective's value, the baseline's (measured the same way), and
    the change."""
    reference = results.baseline_for(row)
    compared = results.versus(row)
    lines = ["| objective | value | baseline | vs baseline |", "| --- | --- | --- | --- |"]
    for name, up in results.objectives.items():
        base = f"{reference.values[name]:.6g}" if reference else "n/a"
        change = compared.get(name)
        shown = "n/a" if change is None else describe_change(change, up)
        lines.append(f"| {name} | {row.values[name]:.6g} | {base} | {shown} |")
    return lines
