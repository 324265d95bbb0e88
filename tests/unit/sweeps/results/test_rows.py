"""The results model: quiet numbers replace in-sweep ones only all together, and every
comparison with the baseline is between numbers measured the same way."""

import optuna

from slimsweep.sweeps.results.rows import read_results


def _study(quiet: dict) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "latency_ms_median"])
    trials = [([0.99, 2.0], {"baseline": True}), ([0.98, 1.0], {}), ([0.90, 3.0], {})]
    for values, attrs in trials:
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))
    study.set_user_attr("quiet_latency", quiet)
    return study


def _quiet(median: float) -> dict:
    return {"latency_ms_median_quiet": median, "latency_repeats_quiet": 50.0}


def test_quiet_numbers_apply_to_front_and_baseline_together() -> None:
    results = read_results(_study({"0": _quiet(4.0), "1": _quiet(1.0)}))
    assert results.remeasured and results.baseline.remeasured
    assert [r.trial for r in results.front] == [0, 1]
    assert results.versus(results.front[1])["latency_ms_median"] == 4.0  # quiet vs quiet
    in_sweep = next(r for r in results.rows if r.trial == 2)
    assert results.versus(in_sweep)["latency_ms_median"] == 2.0 / 3.0  # in-sweep vs in-sweep


def test_a_front_only_partly_remeasured_keeps_every_in_sweep_number() -> None:
    """The baseline was re-measured, trial 1 (on the front) was not: nothing is replaced,
    the baseline included, so no ratio mixes a quiet number with an in-sweep one."""
    results = read_results(_study({"0": _quiet(4.0)}))
    assert not results.remeasured and not results.baseline.remeasured
    assert results.baseline.values["latency_ms_median"] == 2.0
    assert results.versus(results.front[1])["latency_ms_median"] == 2.0
