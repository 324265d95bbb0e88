"""`slimsweep report`: one self-contained HTML page a person can read and pass around."""

import html
from collections import defaultdict

from slimsweep.compressors.plans import FLOAT
from slimsweep.sweeps.readers.pareto import UNFINISHED, in_brackets, not_remeasured
from slimsweep.sweeps.readers.plots import front_svg, page
from slimsweep.sweeps.results.rows import SweepResults, TrialRow


def report_html(results: SweepResults, config_yaml: str | None) -> str:
    rows, reference = results.front, results.baseline
    directions = results.objectives
    header = "".join(f"<th>{html.escape(n)}</th>" for n in directions)
    front_rows = []
    for row in rows:
        compared = results.versus(row)
        cells = "".join(
            f"<td>{row.values[n]:.6g}{in_brackets(compared.get(n), up)}</td>"
            for n, up in directions.items()
        )
        kept = f"<td>{'yes' if row.feasible else 'no'}</td>" if results.constraints else ""
        front_rows.append(
            f"<tr><td>{row.trial}</td><td>{html.escape(row.recipe)}</td>{cells}{kept}"
            f"<td><code>{row.run_id}</code></td></tr>"
        )
    base = (
        f"trial {reference.trial}: "
        + ", ".join(f"{html.escape(n)} {v:.6g}" for n, v in reference.values.items())
        if reference
        else "none in this sweep"
    )
    feasible = "<th>feasible</th>" if results.constraints else ""
    body = f"""<h1>Sweep {html.escape(results.name)}</h1>
<p>{len(results.rows)} completed trials, {results.failed} failed; {len(rows)} on the Pareto
front. Measured on: {html.escape(results.hardware)}. Baseline: {base}.</p>
{_caveats(results)}
<h2>Front</h2>
{front_svg(results)}
{_constraints(results)}
<table id="front-table"><tr><th>trial</th><th>recipe</th>{header}{feasible}<th>MLflow run</th></tr>
{"".join(front_rows)}</table>
<p>In brackets: the difference from the baseline for a maximized objective, the ratio
(x better) for a minimized one.</p>
<h2>By technique</h2>
<p>Best numbers each technique reached, as measured during the sweep (latency: paired with
the baseline, not re-measured).</p>
{_by_technique(results.rows, directions)}
<h2>Config</h2>
<pre>{html.escape(config_yaml or "(not recorded)")}</pre>"""
    return page(f"slimsweep report: {results.name}", body)


def _constraints(results: SweepResults) -> str:
    if not results.constraints:
        return ""
    kept = sum(bool(r.feasible) for r in results.rows)
    which = "the feasible models' front" if results.showing_feasible else "the whole front"
    return (
        f"<p>Constraints: {html.escape('; '.join(results.constraints))}. {kept} of "
        f"{len(results.rows)} completed trials keep them; the table shows {which}.</p>"
    )


def _caveats(results: SweepResults) -> str:
    said = [] if results.finished else [UNFINISHED]
    if results.latency_objectives and results.front and not results.remeasured:
        said.append(not_remeasured(results.name))
    return "".join(f'<p class="caveat"><b>{html.escape(line)}</b></p>' for line in said)


def technique(params: dict) -> str:
    """What a trial applied, in a few words: its stages, and its precision if it quantized."""
    used = sorted(v for k, v in params.items() if k.endswith(".stage") and v != "none") + sorted(
        str(v) for k, v in params.items() if k.endswith(".precision") and v != FLOAT
    )
    return " + ".join(used) or "none"


def _by_technique(rows: list[TrialRow], directions: dict[str, bool]) -> str:
    groups: dict[str, list[TrialRow]] = defaultdict(list)
    for row in rows:
        groups[technique(row.params)].append(row)
    header = "".join(
        f"<th>{'best' if up else 'lowest'} {html.escape(n)}</th>" for n, up in directions.items()
    )
    lines = []
    for name, members in sorted(groups.items()):
        cells = "".join(
            f"<td>{(max if up else min)(r.values[n] for r in members):.6g}</td>"
            for n, up in directions.items()
        )
        lines.append(f"<tr><td>{html.escape(name)}</td><td>{len(members)}</td>{cells}</tr>")
    return (
        f'<table id="by-technique"><tr><th>technique</th><th>trials</th>{header}</tr>'
        f"{''.join(lines)}</table>"
    )
