"""A real sweep that spends its trials well: a repeated recipe is answered from the trial
that computed it, a fine-tuning trial below the floor stops early (PRUNED), constraints mark
every model, and a second sweep starts from the first one's results."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from slimsweep.sweeps.engine.study import finished_count, open_storage
from slimsweep.sweeps.results.rows import read_results

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent


def _args(workdir: Path, cache: Path, name: str, n_trials: int) -> list[str]:
    return [
        f"sweep.dir={workdir}",
        f"sweep.cache_dir={cache}",
        f"sweep.name={name}",
        f"search.n_trials={n_trials}",
        "search/sampler=random",
        "space=distill",
        # four recipes: pruned to 98 % or not, distilled (fixed settings) or not
        "space.recipe.prune.sparsity=0.98",
        "space.recipe.recover.steps=100",
        "space.recipe.recover.temperature=1.0",
        "space.recipe.recover.alpha=0.5",
        "space.recipe.recover.feature_weight=0.0",
        "search.early_stop.floor=0.95",
        "search.early_stop.every=20",
        "search.constraints=[{metric: quality, min: 0.99, of_baseline: true}]",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        "runtime.latency.pair_rounds=2",
        "runtime.latency.quiet_rounds=1",
    ]


def slimsweep(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, as users run it."""
    command = [sys.executable, "-m", "slimsweep.sweeps.cli", *args]
    return subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=600)


def _study(workdir: Path, name: str) -> optuna.Study:
    storage = open_storage(f"sqlite:///{workdir}/optuna.db")
    return optuna.load_study(study_name=name, storage=storage)


def _trial_runs(workdir: Path, name: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.`slimsweep.role` = 'trial'")
    return {run.info.run_id: run for run in runs}


def test_repeats_are_answered_early_stops_pruned_constraints_kept_and_seeds_taken(
    tmp_path: Path, baseline_cache: Path, trained_digits
) -> None:
    first = slimsweep("run", "--quiet", *_args(tmp_path, baseline_cache, "first", 9))
    assert first.returncode == 0, first.stderr
    study = _study(tmp_path, "first")
    trials = study.get_trials()
    assert finished_count(study) == 9

    # A fine-tuning trial of the 98 %-pruned model falls below the floor: PRUNED, with why.
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    assert stopped, [t.params for t in trials]
    runs = _trial_runs(tmp_path, "first")
    for trial in stopped:
        assert trial.params["prune.stage"] == "magnitude_prune"
        assert "below search.early_stop.floor=0.95" in trial.user_attrs["stopped_early"]["reason"]
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "KILLED" and "slimsweep.stopped_early" in run.data.tags

    # Repeats: answered from the trial that computed the recipe, with its values, no new run.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    reused = [t for t in ended if "reused_from" in t.user_attrs]
    computed = [t for t in complete if "reused_from" not in t.user_attrs]
    assert reused, [t.params for t in trials]
    keys = [t.user_attrs["recipe_key"] for t in ended if "reused_from" not in t.user_attrs]
    assert len(keys) == len(set(keys))  # nothing computed (or stopped early) twice
    by_number = {t.number: t for t in trials}
    for trial in reused:
        original = by_number[trial.user_attrs["reused_from"]]
        assert trial.state == original.state and trial.params == original.params
        assert trial.values == original.values
        if trial.state == TrialState.COMPLETE:
            tags = runs[original.user_attrs["mlflow_run_id"]].data.tags
            assert str(trial.number) in tags["slimsweep.reused_by"].split(", ")
    made = {t.user_attrs["mlflow_run_id"] for t in trials if "reused_from" not in t.user_attrs}
    assert made == set(runs)

    # Resumed one trial at a time with every recipe known: each new trial is answered at
    # once (nothing in flight: the driver must not wait on an empty pool).
    more = slimsweep("run", "--quiet", *_args(tmp_path, baseline_cache, "first", 12),
                     "search.parallelism=1")  # fmt: skip
    assert more.returncode == 0, more.stderr
    study = _study(tmp_path, "first")
    assert finished_count(study) == 12
    assert all("reused_from" in t.user_attrs for t in study.get_trials()[len(trials) :])

    # Constraints: every told trial carries them; pareto marks and filters by them.
    baseline = next(t for t in computed if t.user_attrs.get("baseline"))
    floor = 0.99 * baseline.user_attrs["metrics"]["accuracy"]
    for trial in complete:
        (value,) = trial.constraints.values()
        assert (value <= 0) == (trial.user_attrs["metrics"]["accuracy"] >= floor)
    table = slimsweep("pareto", "first", f"sweep.dir={tmp_path}", "--json")
    front = json.loads(table.stdout)["front"]
    feasible = slimsweep("pareto", "first", f"sweep.dir={tmp_path}", "--feasible", "--json")
    kept = json.loads(feasible.stdout)["front"]
    assert kept and all(row["feasible"] for row in kept)
    assert {r["trial"] for r in front if r["feasible"]} <= {r["trial"] for r in kept}

    # A second sweep starts from the first one's results and runs none of them again.
    second = slimsweep(
        "run", "--quiet", *_args(tmp_path, baseline_cache, "second", 3), "search.seed_from=first"
    )
    assert second.returncode == 0, second.stderr
    seeded = _study(tmp_path, "second")
    taken = [t for t in seeded.get_trials() if "seeded_from" in t.user_attrs]
    assert len(taken) == len(computed) and finished_count(seeded) == 3
    assert read_results(seeded).baseline.seeded_from == f"first#{baseline.number}"
    ran = [t for t in seeded.get_trials() if "seeded_from" not in t.user_attrs]
    for trial in ran:  # a recipe the first sweep computed is answered, not run
        if trial.state == TrialState.COMPLETE:
            assert ("reused_from" in trial.user_attrs) == (trial.user_attrs["recipe_key"] in keys)
