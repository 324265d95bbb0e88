"""Recipes drawn at random from the combined space run end to end through the trial path
(every stage, real export, ORT session, eval, latency): any combination the space allows
either runs or was refused before launch."""

import optuna

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.trial import TrialRequest, run_trial
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.space import describe_recipe


def test_random_recipes_from_the_combined_space_all_run(baseline_cache, trained_digits) -> None:
    settings = load_settings(["space=combined", "space.recipe.recover.steps.choices=[20]"])
    runtime = type(settings.runtime)(
        name="ort_cpu", latency=LatencySettings(warmup=1, repeats=3, min_seconds=0)
    )
    study = optuna.create_study(
        directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=5)
    )
    stages_seen: set[str] = set()
    for number in range(8):
        trial = study.ask()
        recipe = settings.space.sample(trial)
        stages_seen |= {step.stage for step in recipe}
        worker = WorkerSpec(settings.task, runtime)
        result = run_trial(TrialRequest(number, recipe, worker, str(baseline_cache)))
        assert result.error is None, f"{describe_recipe(recipe)}:\n{result.error}"
        assert result.metrics["size_bytes"] == len(result.artifact)
        assert 0.0 <= result.metrics["accuracy"] <= 1.0
        study.tell(trial, result.metrics["accuracy"])
    assert len(stages_seen) >= 6  # the draws really mixed the techniques
