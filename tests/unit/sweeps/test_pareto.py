import itertools
import random

import optuna

from slimsweep.sweeps.pareto import format_front, front


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
        rows = front(study)
        assert {r.trial for r in rows} == brute, case
        for a, b in itertools.combinations(rows, 2):
            assert not _dominates(list(a.values.values()), list(b.values.values()), signs)
        accuracies = [r.values["accuracy"] for r in rows]
        assert accuracies == sorted(accuracies, reverse=True)


def test_table_shows_units_and_counts() -> None:
    study = optuna.create_study(study_name="s", directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["accuracy", "size_bytes", "latency_ms_median"])
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.98, 2048.0, 1.5],
            user_attrs={
                "recipe": "quantize(precision=int8_static)",
                "mlflow_run_id": "abc",
                "metrics": {"latency_ms_p10": 1.4, "latency_ms_p90": 1.7},
            },
        )
    )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    table = format_front(study)
    assert "1 of 1 completed trials (1 failed)" in table
    assert (
        "size KiB" in table and "2.0" in table and "1.500 (1.400-1.700)" in table and "abc" in table
    )
