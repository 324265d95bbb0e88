"""Architecture families: a student of another shape than the teacher, named by a few knobs
(`L4 H256 A8 I1024`), built from the teacher's weights where the shapes allow and then
distilled from it. A family is a recipe stage like any other, so its knobs sit in the
space under an `arch` slot and Optuna picks the architecture, the recipe and the runtime
together.

A family registers two builders: `random` (the knobs' shape, freshly initialised) and
`from_teacher` (the same shape, with a subset of the teacher's layers and its most
important channels, heads or hidden dimensions, ranked on calibration activations). Its
knobs are a frozen dataclass deriving from `StudentConfig`, whose `__post_init__` refuses
an invalid combination (the space tries every combination before launch) and whose
`summary()` is the one-line name MLflow records.

A task says which family its model belongs to with the optional member
`architecture_family = "<name>"`; a space whose arch slot names another is refused.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from slimsweep.compressors.base import STAGES, CompressedModel, Stage, StageContext
from slimsweep.compressors.finetune import TrainConfig, finetune
from slimsweep.sweeps.errors import ConfigError, require_choice
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.task import Batch

INITS = ("teacher", "random")


@dataclass(frozen=True)
class StudentConfig(TrainConfig):
    """What every family's knobs share: how the student starts, and its distillation budget
    (the steps, learning rate and loss mix of `TrainConfig`)."""

    steps: int = 300
    learning_rate: float = 0.001
    init: str = "teacher"  # teacher: weights sliced from the teacher | random

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("init", self.init, INITS)

    def summary(self) -> str:
        """The architecture in one line, e.g. `L4 H256 A8 I1024`."""
        raise NotImplementedError


Knobs = TypeVar("Knobs", bound=StudentConfig)
Builder = Callable[[torch.nn.Module, Any, list[Batch]], torch.nn.Module]


@dataclass(frozen=True)
class Family:
    name: str
    knobs: type[StudentConfig]
    random: Builder  # (teacher, knobs, calibration) -> a freshly initialised student
    from_teacher: Builder  # (teacher, knobs, calibration) -> a student holding its weights


FAMILIES: Registry[Family] = Registry("architecture family")


def register_family(name: str, knobs: type[Knobs], random: Builder, from_teacher: Builder) -> None:
    """Register family `name` and its stage of the same name."""
    family = Family(name, knobs, random, from_teacher)
    FAMILIES.add(name, family)

    def apply(model: CompressedModel, config: StudentConfig, ctx: StageContext) -> CompressedModel:
        return _student(family, model, config, ctx)

    STAGES.add(name, Stage(name, knobs, apply))


def arch_summary(stage: str, params: dict[str, Any]) -> str | None:
    """The one-line architecture a recipe step builds, or None for a step of no family."""
    if stage not in FAMILIES.names():
        return None
    try:
        return FAMILIES.get(stage).knobs(**params).summary()
    except (ConfigError, TypeError, ValueError):
        return None  # a draw its stage refuses: the trial fails with that reason


def _student(
    family: Family, model: CompressedModel, config: StudentConfig, ctx: StageContext
) -> CompressedModel:
    """The student built from the incoming model (the teacher: a family's slot comes
    first), then distilled from the teacher for the configured budget. Its zeros (a padded
    kernel, the projection back to the teacher's width) are trained like any other weight,
    not kept as pruned ones."""
    torch.manual_seed(ctx.seed)
    build = family.from_teacher if config.init == "teacher" else family.random
    with torch.no_grad():
        student = build(model.module.eval(), config, ctx.data.calibration).eval()
    finetune(student, ctx, config, keep_zeros=False)
    return CompressedModel(student, metrics=dict(model.metrics))


def kept_indices(importance: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` most important positions, in their original order."""
    return importance.topk(min(count, len(importance))).indices.sort().values


def spread_layers(available: int, kept: int) -> list[int]:
    """`kept` of `available` layers, evenly spread and always with the first and the last
    (on MiniLM, the last layer matters most: benchmarks/minilm_front.md)."""
    if kept >= available:
        return list(range(available))
    if kept == 1:
        return [available - 1]
    step = (available - 1) / (kept - 1)
    return sorted({round(i * step) for i in range(kept)})


def transplant(target: torch.Tensor, source: torch.Tensor, *index: torch.Tensor | None) -> None:
    """Copy into `target` the part of `source` at `index` (one per dimension; None takes all
    of it). An index of -1 marks a position the teacher does not have (a student wider
    there): it keeps `target`'s fresh initialisation, since a zero would never learn (its
    gradients are zero too)."""
    taken, missing = source, torch.zeros(target.shape, dtype=torch.bool)
    for dim, positions in enumerate(index):
        if positions is None:
            continue
        taken = taken.index_select(dim, positions.clamp(min=0))
        shape = [1] * target.dim()
        shape[dim] = len(positions)
        missing = missing | (positions < 0).view(shape)
    target.copy_(torch.where(missing, target, taken))


def padded(kept: torch.Tensor, size: int) -> torch.Tensor:
    """`kept` positions followed by -1 up to `size` (the student's extra width)."""
    return torch.cat([kept, kept.new_full((size - len(kept),), -1)])
