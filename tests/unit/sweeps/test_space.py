from dataclasses import dataclass

import optuna
import pytest

from slimsweep.sweeps.errors import ConfigError, require_range
from slimsweep.sweeps.space import NO_STAGE, RecipeStep, describe_recipe, parse_space


@dataclass(frozen=True)
class PruneConfig:
    sparsity: float = 0.5
    scope: str = "global"

    def __post_init__(self) -> None:
        require_range("sparsity", self.sparsity, 0.0, 1.0, high_inclusive=False)


@dataclass(frozen=True)
class QuantConfig:
    precision: str = "fp32"
    calibration: str = "minmax"
    bits: int = 8


STAGES = {"prune": PruneConfig, "quant": QuantConfig}


def space_node(**recipe_overrides: object) -> dict:
    recipe = {
        "prune": {
            "stage": {"choices": [NO_STAGE, "prune"]},
            "sparsity": {"low": 0.1, "high": 0.9, "when": {"stage": "prune"}},
        },
        "quantize": {
            "stage": "quant",
            "precision": {"choices": ["fp32", "int8"]},
            "calibration": {"choices": ["minmax", "entropy"], "when": {"precision": "int8"}},
        },
    }
    recipe.update(recipe_overrides)
    return {"name": "t", "recipe": recipe}


def test_conditional_parameter_exists_only_under_its_condition() -> None:
    space = parse_space(space_node(), STAGES)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        recipe = {step.slot: step for step in space.sample(trial)}
        precision = trial.params["quantize.precision"]
        assert ("quantize.calibration" in trial.params) == (precision == "int8")
        assert ("prune.sparsity" in trial.params) == (trial.params["prune.stage"] == "prune")
        assert ("prune" in recipe) == (trial.params["prune.stage"] == "prune")
        assert recipe["quantize"].stage == "quant"  # a fixed stage is not an Optuna parameter
        seen.add((trial.params["prune.stage"], precision))
        study.tell(trial, 0.0)
    assert len(seen) == 4


def test_fixed_trial_reproduces_a_recipe() -> None:
    space = parse_space(space_node(), STAGES)
    params = {
        "prune.stage": "prune",
        "prune.sparsity": 0.5,
        "quantize.precision": "int8",
        "quantize.calibration": "entropy",
    }
    recipe = space.sample(optuna.trial.FixedTrial(params))
    assert recipe == [
        RecipeStep("prune", "prune", {"sparsity": 0.5}),
        RecipeStep("quantize", "quant", {"precision": "int8", "calibration": "entropy"}),
    ]
    assert describe_recipe(recipe) == (
        "prune(sparsity=0.5) → quant(precision=int8, calibration=entropy)"
    )
    assert describe_recipe([]) == "baseline (no compression)"
    assert str(RecipeStep("p", "prune", {"sparsity": 0.9000000000000001})) == "prune(sparsity=0.9)"


def test_integer_range_suggests_integers() -> None:
    space = parse_space(
        space_node(quantize={"stage": "quant", "bits": {"low": 2, "high": 8}}), STAGES
    )
    trial = optuna.create_study().ask()
    bits = {s.slot: s for s in space.sample(trial)}["quantize"].params["bits"]
    assert isinstance(bits, int) and 2 <= bits <= 8


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (
            {"prune": {"stage": "nope"}},
            "space.recipe.prune.stage: unknown stage 'nope'; registered: prune, quant",
        ),
        (
            {"prune": {"stage": "prune", "sparsty": 0.5}},
            "stage 'prune' has no parameter 'sparsty'; it has: sparsity, scope",
        ),
        (
            {"prune": {"stage": "prune", "sparsity": {"low": 0.5, "high": 1.5}}},
            "space.recipe.prune.sparsity (stage prune): sparsity=1.5 is out of range",
        ),
        (
            {"prune": {"stage": "prune", "sparsity": {"low": 0.9, "high": 0.1}}},
            "low=0.9 is greater than high=0.1",
        ),
        (
            {"prune": {"stage": "prune", "sparsity": {"choices": []}}},
            "choices must be a non-empty list",
        ),
        ({"prune": {"stage": "prune", "sparsity": {"lo": 0.1}}}, "unknown key 'lo'"),
        (
            {"prune": {"stage": "prune", "sparsity": {"value": 0.5, "when": {"scope": "x"}}}},
            "refers to 'scope', which is not a parameter defined before it",
        ),
        (
            {"prune": {"stage": "prune", "sparsity": {"value": 0.5, "when": {"stage": "prnue"}}}},
            "when: 'prnue' is not a value that 'stage' can take",
        ),
        ({"prune": {"sparsity": 0.5}}, "space.recipe.prune must be a mapping with a 'stage' key"),
    ],
)
def test_bad_space_is_refused_naming_the_key(recipe: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_space(space_node(**recipe), STAGES)
    assert message in str(error.value)


def test_narrowed_choices_leave_a_condition_inactive_not_wrong() -> None:
    quantize = {
        "stage": "quant",
        "precision": {"choices": ["fp32"]},  # "int8" narrowed away, e.g. by an override
        "calibration": {"choices": ["minmax"], "when": {"precision": "int8"}},
    }
    space = parse_space(space_node(quantize=quantize), STAGES)
    recipe = space.sample(
        optuna.trial.FixedTrial({"prune.stage": NO_STAGE, "quantize.precision": "fp32"})
    )
    assert recipe == [RecipeStep("quantize", "quant", {"precision": "fp32"})]


def test_condition_on_another_slot() -> None:
    quantize = {
        "stage": "quant",
        "precision": {"choices": ["fp32", "int8"], "when": {"prune.stage": "prune"}},
    }
    space = parse_space(space_node(quantize=quantize), STAGES)
    none_recipe = space.sample(optuna.trial.FixedTrial({"prune.stage": NO_STAGE}))
    assert none_recipe == [RecipeStep("quantize", "quant", {})]


def test_baseline_is_checked_like_an_enqueued_recipe() -> None:
    baseline = {"prune": {"stage": NO_STAGE}, "quantize": {"precision": "fp32"}}
    space = parse_space({**space_node(), "baseline": baseline}, STAGES)
    assert space.baseline == {"prune.stage": NO_STAGE, "quantize.precision": "fp32"}
    with pytest.raises(ConfigError, match="space.baseline leaves a parameter unset"):
        parse_space({**space_node(), "baseline": {"prune": {"stage": NO_STAGE}}}, STAGES)


def test_enqueued_trials_are_checked() -> None:
    good = {"prune": {"stage": NO_STAGE}, "quantize": {"precision": "fp32"}}
    space = parse_space({**space_node(), "enqueue": [good]}, STAGES)
    assert space.enqueue == ({"prune.stage": NO_STAGE, "quantize.precision": "fp32"},)
    for bad, message in [
        ({"prune": {"stage": NO_STAGE}}, "leaves a parameter unset"),
        (
            {**good, "quantize": {"precision": "fp64"}},
            "quantize.precision='fp64' is outside the space",
        ),
        (
            {**good, "prune": {"stage": NO_STAGE, "sparsity": 0.5}},
            "do not exist under the other values",
        ),
    ]:
        with pytest.raises(ConfigError, match=r"space\.enqueue\[0\]") as error:
            parse_space({**space_node(), "enqueue": [bad]}, STAGES)
        assert message in str(error.value)


def test_slot_configurations_are_exactly_what_sampling_can_produce() -> None:
    """The pre-launch check puts whole configurations to the runtime: every combination the
    slot can hand its stage (ranges by their ends), no more."""
    node = space_node(
        quantize={
            "stage": "quant",
            "precision": {"choices": ["fp32", "int8"]},
            "calibration": {"choices": ["minmax", "entropy"], "when": {"precision": "int8"}},
            "bits": {"choices": [4, 8], "when": {"prune.stage": "prune"}},  # another slot's
        }
    )
    slot = parse_space(node, STAGES).slots[1]
    found = sorted(map(repr, slot.configurations("quant")))
    expected = [
        {"precision": precision, **calibration, **bits}
        for precision, calibration in [
            ("fp32", {}),
            ("int8", {"calibration": "minmax"}),
            ("int8", {"calibration": "entropy"}),
        ]
        for bits in ({}, {"bits": 4}, {"bits": 8})  # the other slot decides: any of these
    ]
    assert found == sorted(map(repr, expected))
    prune = parse_space(node, STAGES).slots[0]
    assert prune.configurations("prune") == [{"sparsity": 0.1}, {"sparsity": 0.9}]


@dataclass(frozen=True)
class ShapeConfig:
    hidden: int = 256
    heads: int = 8

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"heads={self.heads} must divide hidden={self.hidden}")


def test_a_combination_that_a_stage_refuses_is_refused_before_any_draw() -> None:
    """Each value alone is one the stage takes with some other; one pair is not."""
    shape = {"stage": "shape", "hidden": {"choices": [192, 256]}, "heads": {"choices": [6, 8]}}
    with pytest.raises(ConfigError, match=r"can draw hidden=256, heads=6, .*must divide"):
        parse_space({"name": "s", "recipe": {"arch": shape}}, {"shape": ShapeConfig})
    valid = {**shape, "heads": {"choices": [4, 8]}}
    assert parse_space({"name": "s", "recipe": {"arch": valid}}, {"shape": ShapeConfig})
    # every value of a short integer range is tried, not only its ends
    stepped = {**shape, "hidden": {"low": 128, "high": 384, "step": 32}}
    with pytest.raises(ConfigError, match="hidden=160"):
        parse_space(
            {"name": "s", "recipe": {"arch": {**stepped, "heads": 64}}}, {"shape": ShapeConfig}
        )


def test_a_runtime_choice_is_drawn_first_and_queued_recipes_name_theirs() -> None:
    node = {
        **space_node(),
        "runtime": {"choices": ["ort_cpu", "torch_cpu"]},
        "baseline": {"prune": {"stage": NO_STAGE}, "quantize": {"precision": "fp32"}},
        "enqueue": [
            {
                "runtime": "torch_cpu",
                "prune": {"stage": NO_STAGE},
                "quantize": {"precision": "fp32"},
            }
        ],
    }
    space = parse_space(node, STAGES, ("ort_cpu", "torch_cpu"), "ort_cpu")
    assert space.baseline["runtime"] == "ort_cpu"  # the sweep's, unless named
    assert space.enqueue[0]["runtime"] == "torch_cpu"
    trial = optuna.create_study().ask()
    space.sample(trial)
    assert next(iter(trial.params)) == "runtime" and space.runtime_of(trial.params) in (
        "ort_cpu",
        "torch_cpu",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"runtime": ["ort_cpu", "torch_cpu"]}, r"space.runtime must be \{choices"),
        ({"runtime": {"choices": ["ort_cpu", "tflite"]}}, "unknown runtime 'tflite'"),
        ({"runtime": {"choices": ["torch_cpu"]}}, "must include runtime=ort_cpu"),
        (
            {
                "runtime": {"choices": ["ort_cpu", "torch_cpu"]},
                "baseline": {
                    "runtime": "torch_cpu",
                    "prune": {"stage": NO_STAGE},
                    "quantize": {"precision": "fp32"},
                },
            },
            "the baseline runs on the sweep's runtime",
        ),
        (
            {
                "enqueue": [
                    {
                        "runtime": "ort_cpu",
                        "prune": {"stage": NO_STAGE},
                        "quantize": {"precision": "fp32"},
                    }
                ]
            },
            "names a runtime, and the space has no runtime choice",
        ),
    ],
)
def test_a_wrong_runtime_choice_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_space({**space_node(), **change}, STAGES, ("ort_cpu", "torch_cpu"), "ort_cpu")
