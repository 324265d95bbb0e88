"""How the search spends trials: samplers by config, resumes that do not replay, the recipes
users try first, seeding from another sweep, constraints, and one key per recipe."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.repeats import Repeats, recipe_key
from slimsweep.sweeps.engine.study import finished_count, open_storage, open_study
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.readers.space_tree import count_recipes
from slimsweep.sweeps.results.feasibility import violations
from slimsweep.sweeps.results.keys import BASELINE_ATTR, METRICS_ATTR, SEEDED_FROM_ATTR
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.space import RecipeStep


def _settings(folder: Path, *overrides: str):
    folder.mkdir(parents=True, exist_ok=True)
    return load_settings([f"sweep.dir={folder}", *overrides])


def _study(settings) -> optuna.Study:
    return open_study(settings, open_storage(settings.sweep.storage))


def _tell(study: optuna.Study, settings, count: int) -> list[dict]:
    """Ask and tell `count` trials with made-up values; their params."""
    asked = []
    for _ in range(count):
        trial = study.ask()
        settings.space.sample(trial)
        asked.append(dict(trial.params))
        metrics = {"accuracy": 0.9, "size_bytes": 1e5 * (trial.number + 1)}
        trial.set_user_attr(METRICS_ATTR, {**metrics, "latency_ms_median": 1.0})
        if trial.params == settings.space.baseline:
            trial.set_user_attr(BASELINE_ATTR, True)
        study.tell(trial, [0.9, 1e5 * (trial.number + 1), 1.0])
    return asked


@pytest.mark.parametrize(
    ("name", "sampler"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("nsga3", optuna.samplers.NSGAIIISampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
    ],
)
def test_each_sampler_is_a_config_choice(tmp_path, name, sampler) -> None:
    settings = _settings(tmp_path, f"search/sampler={name}", "search.sampler.seed=7")
    assert settings.search.sampler["seed"] == 7
    assert type(_study(settings).sampler) is sampler


def test_the_default_tpe_lies_about_running_trials_when_trials_run_in_parallel(tmp_path) -> None:
    settings = _settings(tmp_path)
    assert settings.search.parallelism > 1
    sampler = _study(settings).sampler
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._constant_liar


def test_a_resumed_sweep_does_not_replay_its_first_proposals(tmp_path) -> None:
    options = ("search/sampler=random", "search.first_tries=false")
    first = _settings(tmp_path / "a", *options)
    proposed = _tell(_study(first), first, 4)[1:]  # after the baseline
    again = _settings(tmp_path / "b", *options)
    assert _tell(_study(again), again, 4)[1:] == proposed  # one seed, one sequence
    resumed = _tell(_study(first), first, 3)  # the same sweep, opened again
    assert resumed != proposed


def test_the_baseline_and_the_first_tries_run_before_the_sampler(tmp_path) -> None:
    settings = _settings(tmp_path)
    study = _study(settings)
    queued = study.get_trials(states=(TrialState.WAITING,))
    waiting = [t.system_attrs["fixed_params"] for t in queued]
    assert waiting == [
        {"prune.stage": "none", "quantize.precision": "fp32"},
        {"prune.stage": "none", "quantize.precision": "fp16"},
        {"prune.stage": "none", "quantize.precision": "int8_dynamic", "quantize.per_channel": True},
        {
            "prune.stage": "none",
            "quantize.precision": "int8_static",
            "quantize.per_channel": True,
            "quantize.calibration": "minmax",
        },
    ]
    assert [p for p in _tell(study, settings, 4)] == waiting  # asked in that order
    # only the tries the space can produce
    narrow = _settings(tmp_path / "n", "space.recipe.quantize.precision.choices=[fp32,fp16]")
    assert len(_study(narrow).get_trials(states=(TrialState.WAITING,))) == 2


def test_a_seeded_sweep_starts_from_the_other_sweeps_trials(tmp_path) -> None:
    source = _settings(tmp_path, "sweep.name=before", "search.first_tries=false")
    done = _tell(_study(source), source, 3)
    seeded = _settings(
        tmp_path, "sweep.name=after", "search.seed_from=before", "search.first_tries=false"
    )
    study = _study(seeded)
    taken = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.params for t in taken] == done
    assert [t.user_attrs[SEEDED_FROM_ATTR] for t in taken] == [
        {"sweep": "before", "trial": n} for n in range(3)
    ]
    assert finished_count(study) == 0  # they were run by the other sweep
    _study(seeded)  # resumed: not seeded twice
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    other_runtime = _settings(
        tmp_path, "sweep.name=elsewhere", "search.seed_from=before", "runtime.exporter=dynamo"
    )
    with pytest.raises(SweepError, match="ran another runtime"):
        _study(other_runtime)


def test_constraints_mark_trials_feasible_or_not(tmp_path) -> None:
    constraints = [
        {"metric": "accuracy", "min": 0.99, "of_baseline": True},
        {"metric": "size_bytes", "max": 250000.0},
    ]
    baseline = {"accuracy": 0.98, "size_bytes": 1e6}
    assert violations(constraints, {"accuracy": 0.975, "size_bytes": 2e5}, baseline) == [
        pytest.approx((0.9702 - 0.975) / 0.9702),
        pytest.approx(-0.2),
    ]
    assert violations(constraints, {"accuracy": 0.96, "size_bytes": 2e5}, baseline)[0] > 0
    assert violations(constraints, {"size_bytes": 3e5}, baseline) == [1.0, pytest.approx(0.2)]

    settings = _settings(tmp_path, "search.constraints=[{metric: size_bytes, max: 250000}]")
    study = _study(settings)
    _tell(study, settings, 4)  # sizes 1e5, 2e5, 3e5, 4e5
    results = read_results(study)
    assert [r.feasible for r in results.rows] == [True, True, False, False]
    assert results.constraints == ["size_bytes <= 250000"]
    assert {r.trial for r in results.feasible_front} <= {0, 1}


def test_one_recipe_one_key_whatever_defaults_it_spells_out() -> None:
    spelled = [
        RecipeStep("quantize", "quantize", {"precision": "int8_dynamic", "per_channel": True})
    ]
    implied = [RecipeStep("q", "quantize", {"precision": "int8_dynamic"})]
    other = [
        RecipeStep("quantize", "quantize", {"precision": "int8_dynamic", "per_channel": False})
    ]
    assert recipe_key(spelled) == recipe_key(implied) != recipe_key(other)


def test_the_space_counts_its_distinct_recipes(tmp_path) -> None:
    # prune: none, or 14 sparsities × 2 scopes; quantize: fp32, fp16, int8_dynamic × 2,
    # int8_static × 2 × 3, int4_weight × 2
    assert count_recipes(_settings(tmp_path).space) == f"{29 * 12}"


def test_a_repeat_of_a_running_recipe_waits_and_runs_only_if_that_one_fails(tmp_path) -> None:
    settings = _settings(tmp_path, "search.first_tries=false")
    study = _study(settings)
    _tell(study, settings, 2)
    repeats = Repeats(study, settings.space)  # an older sweep's trials: keyed by their params
    for trial in study.get_trials():
        recipe = settings.space.sample(optuna.trial.FixedTrial(trial.params))
        assert repeats.answered_by(recipe_key(recipe)).number == trial.number
    assert repeats.wait_or_run("k", "first") is False  # runs
    assert repeats.wait_or_run("k", "second") is True  # waits for it
    assert repeats.done("k", None) == ["second"]  # it failed: the waiter is handed back
    assert repeats.wait_or_run("k", "second") is False  # and runs itself
    assert repeats.wait_or_run("k", "third") is True
    computed = study.get_trials()[0]
    assert repeats.done("k", computed) == ["third"] and repeats.answered_by("k") is computed
