import optuna
import pytest

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.readers.choose import Bound, choose
from slimsweep.sweeps.results.rows import SweepResults, read_results

# accuracy (max), size (min), latency (min): a front with an obvious knee at trial 2
POINTS = [
    (0.99, 1000.0, 10.0),
    (0.985, 600.0, 6.0),
    (0.98, 250.0, 2.5),
    (0.90, 200.0, 2.0),
    (0.70, 100.0, 1.0),
]


@pytest.fixture
def results() -> SweepResults:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], study_name="s")
    study.set_metric_names(["accuracy", "size_bytes", "latency_ms_median"])
    for point in POINTS:
        study.add_trial(
            optuna.trial.create_trial(
                values=list(point), user_attrs={"metrics": {"zero_fraction": 0.5}}
            )
        )
    return read_results(study)


def test_best_first_objective_within_bounds(results) -> None:
    choice = choose(results, [Bound("latency_ms_median", 6.0, upper=True)], knee=False)
    assert choice.row.trial == 1
    assert "4 of 5 front models meet latency_ms_median <= 6" in choice.reason
    choice = choose(
        results,
        [Bound("accuracy", 0.95, upper=False), Bound("size_bytes", 300, upper=True)],
        knee=False,
    )
    assert choice.row.trial == 2


def test_knee_is_closest_to_the_ideal_point(results) -> None:
    choice = choose(results, [], knee=True)
    assert choice.row.trial == 2 and "knee" in choice.reason


def test_bounds_may_name_any_recorded_metric(results) -> None:
    assert choose(results, [Bound("zero_fraction", 0.5, upper=True)], knee=False).row.trial == 0


def test_impossible_or_unknown_bounds_say_so(results) -> None:
    with pytest.raises(SweepError, match="no model on the front of 's' meets accuracy >= 0.999"):
        choose(results, [Bound("accuracy", 0.999, upper=False)], knee=False)
    with pytest.raises(SweepError, match="bound on unknown metric 'speed'"):
        choose(results, [Bound("speed", 1.0, upper=True)], knee=False)


def test_the_closest_model_is_the_one_nearest_the_bounds(results) -> None:
    # size <= 90: trial 4 (100) misses by 11 %, trial 3 (200) by 122 %; both miss one bound
    with pytest.raises(SweepError, match="the closest, trial 4, misses size_bytes <= 90"):
        choose(results, [Bound("size_bytes", 90, upper=True)], knee=False)
    with pytest.raises(SweepError, match="the closest, trial 0, misses accuracy >= 0.995"):
        choose(results, [Bound("accuracy", 0.995, upper=False)], knee=False)
