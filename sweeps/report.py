"""`slimsweep report`: one self-contained HTML page a person can read and pass around."""

import html
from collections import defaultdict

import optuna
from optuna.trial import TrialState

from slimsweep.sweeps.pareto import baseline, describe_change, front, objectives, versus
from slimsweep.sweeps.plots import front_svg, page


def report_html(study: optuna.Study, config_yaml: str | None) -> str:
    rows, reference = front(study), baseline(study)
    directions = objectives(study)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    header = "".join(f"<th>{html.escape(n)}</th>" for n in directions)
    front_rows = []
    for row in rows:
        compared = versus(row, reference, study) if reference else {}
        cells = "".join(
            f"<td>{row.values[n]:.6g}{_change(compared.get(n), up)}</td>"
            for n, up in directions.items()
        )
        front_rows.append(
            f"<tr><td>{row.trial}</td><td>{html.escape(row.recipe)}</td>{cells}"
            f"<td><code>{row.run_id}</code></td></tr>"
        )
    base = (
        f"trial {reference.trial}: "
        + ", ".join(f"{html.escape(n)} {v:.6g}" for n, v in reference.values.items())
        if reference
        else "none in this sweep"
    )
    body = f"""<h1>Sweep {html.escape(study.study_name)}</h1>
<p>{len(completed)} completed trials, {failed} failed; {len(rows)} on the Pareto front.
Measured on: {html.escape(str(study.user_attrs.get("hardware", "unknown")))}.
Baseline: {base}.</p>
<h2>Front</h2>
{front_svg(study)}
<table id="front-table"><tr><th>trial</th><th>recipe</th>{header}<th>MLflow run</th></tr>
{"".join(front_rows)}</table>
<p>In brackets: the difference from the baseline for a maximized objective, the ratio
(x better) for a minimized one.</p>
<h2>By technique</h2>
{_by_technique(completed, directions)}
<h2>Config</h2>
<pre>{html.escape(config_yaml or "(not recorded)")}</pre>"""
    return page(f"slimsweep report: {study.study_name}", body)


def technique(params: dict) -> str:
    """What a trial applied, in a few words: its stages, and its precision if it quantized."""
    used = sorted(v for k, v in params.items() if k.endswith(".stage") and v != "none") + sorted(
        str(v) for k, v in params.items() if k.endswith(".precision") and v != "fp32"
    )
    return " + ".join(used) or "none"


def _by_technique(trials: list[optuna.trial.FrozenTrial], directions: dict[str, bool]) -> str:
    groups: dict[str, list[optuna.trial.FrozenTrial]] = defaultdict(list)
    for trial in trials:
        groups[technique(trial.params)].append(trial)
    header = "".join(
        f"<th>{'best' if up else 'lowest'} {html.escape(n)}</th>" for n, up in directions.items()
    )
    lines = []
    for name, members in sorted(groups.items()):
        cells = "".join(
            f"<td>{(max if up else min)(t.values[i] for t in members):.6g}</td>"
            for i, up in enumerate(directions.values())
        )
        lines.append(f"<tr><td>{html.escape(name)}</td><td>{len(members)}</td>{cells}</tr>")
    return (
        f'<table id="by-technique"><tr><th>technique</th><th>trials</th>{header}</tr>'
        f"{''.join(lines)}</table>"
    )


def _change(compared: float | None, up: bool) -> str:
    return "" if compared is None else f" ({describe_change(compared, up)})"
