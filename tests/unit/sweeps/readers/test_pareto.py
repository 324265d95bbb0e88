import itertools
import json
import random

import optuna
import pytest

from slimsweep.sweeps.readers.pareto import format_front, front_json
from slimsweep.sweeps.results.rows import read_results


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    """a is at least as good as b everywhere and better somewhere (signs: +1 maximize)."""
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def test_front_is_exactly_the_non_dominated_set() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    for case in range(20):
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        study.set_metric_names(["accuracy", "size_bytes", "latency_ms_median"])
        values = [
            [
                rng.choice([0.9, 0.95, 0.97]),
                rng.choice([1e5, 2e5, 9e5]),
                rng.choice([0.5, 1.0, 1.3]),
            ]
            for _ in range(rng.randint(1, 25))
        ]
        for v in values:
            study.add_trial(
                optuna.trial.create_trial(
                    values=v, user_attrs={"recipe": "r", "mlflow_run_id": "id"}
                )
            )
        signs = [1, -1, -1]
        brute = {
            i for i, v in enumerate(values) if not any(_dominates(w, v, signs) for w in values)
        }
        rows = read_results(study).front
        assert {r.trial for r in rows} == brute, case
        for a, b in itertools.combinations(rows, 2):
            assert not _dominates(list(a.values.values()), list(b.values.values()), signs)
        accuracies = [r.values["accuracy"] for r in rows]
        assert accuracies == sorted(accuracies, reverse=True)


def _study_with_baseline() -> optuna.Study:
    study = optuna.create_study(study_name="s", directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["accuracy", "size_bytes", "latency_ms_median"])
    ci = {"latency_ms_ci95_low": 1.4, "latency_ms_ci95_high": 1.7}
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.99, 8192.0, 3.0],
            user_attrs={"recipe": "baseline", "mlflow_run_id": "b", "baseline": True},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.98, 2048.0, 1.5],
            user_attrs={
                "recipe": "quantize(precision=int8_static)",
                "mlflow_run_id": "abc",
                "metrics": ci,
            },
        )
    )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return study


def test_table_compares_with_the_baseline_in_the_user_s_units() -> None:
    table = format_front(read_results(_study_with_baseline()))
    assert "2 of 2 completed trials (1 failed)" in table
    assert "baseline: trial 0, accuracy 0.9900, size KiB 8.0, latency ms 3 [3-3]" in table
    row = next(line for line in table.splitlines() if line.startswith("1 "))
    assert "0.9800 (-0.0100)" in row and "2.0 (4.00x)" in row
    assert "1.5 [1.4-1.7] (2.00x)" in row and row.endswith("abc")  # significant figures


def test_a_latency_change_inside_the_trials_interval_is_shown_as_noise() -> None:
    study = _study_with_baseline()
    noise = {"latency_ms_ci95_low": 2.9, "latency_ms_ci95_high": 3.2}  # holds the baseline's 3
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.995, 8192.0, 2.97],
            user_attrs={"recipe": "fp32 again", "mlflow_run_id": "copy", "metrics": noise},
        )
    )
    row = next(line for line in format_front(read_results(study)).splitlines() if "copy" in line)
    assert "2.97 [2.9-3.2] (≈)" in row and "1.01x" not in row


def test_json_and_sorting() -> None:
    results = read_results(_study_with_baseline())
    by_size = results.sorted_by(results.front, "size_bytes")
    assert [r.trial for r in by_size] == [1, 0]
    assert [r.trial for r in results.sorted_by(results.front, "accuracy")] == [0, 1]
    document = json.loads(front_json(results, by_size))
    assert document["baseline"]["trial"] == 0
    assert document["front"][0]["versus_baseline"] == {
        "accuracy": pytest.approx(-0.01),
        "size_bytes": 4.0,
        "latency_ms_median": 2.0,
    }
    assert document["objectives"][1] == {"metric": "size_bytes", "direction": "minimize"}
