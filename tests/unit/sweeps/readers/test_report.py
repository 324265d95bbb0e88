import re

import optuna

from slimsweep.sweeps.readers.report import report_html, technique
from slimsweep.sweeps.results.rows import read_results


def _study() -> optuna.Study:
    study = optuna.create_study(study_name="s", directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "size_bytes"])
    trials = [
        ({"prune.stage": "none", "quantize.precision": "fp32"}, [0.99, 900.0], True),
        ({"prune.stage": "none", "quantize.precision": "int8_static"}, [0.98, 250.0], False),
        (
            {"prune.stage": "magnitude_prune", "quantize.precision": "int8_static"},
            [0.97, 200.0],
            False,
        ),
    ]
    for params, values, is_baseline in trials:
        dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
        attrs = {"recipe": "<r>", "baseline": is_baseline, "mlflow_run_id": "run"}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, values=values, user_attrs=attrs
            )
        )
    return study


def test_technique_names_what_a_trial_applied() -> None:
    assert technique({"prune.stage": "none", "quantize.precision": "fp32"}) == "none"
    assert (
        technique({"prune.stage": "magnitude_prune", "quantize.precision": "int8_static"})
        == "magnitude_prune + int8_static"
    )


def test_report_has_the_front_the_breakdown_and_the_config() -> None:
    results = read_results(_study())
    page = report_html(results, "search:\n  n_trials: <16>\n")
    front_table = page[page.index('id="front-table"') : page.index("</table>")]
    assert front_table.count("<tr>") == 1 + len(results.front) == 4
    assert "0.98 (-0.01)" in front_table and "250 (3.60x)" in front_table
    breakdown = page[page.index('id="by-technique"') :]
    assert re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", breakdown) == [
        ("int8_static", "1"),
        ("magnitude_prune + int8_static", "1"),
        ("none", "1"),
    ]
    assert "n_trials: &lt;16&gt;" in page and "&lt;r&gt;" in page
    assert "<script" not in page
