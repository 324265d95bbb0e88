"""The stage contract: a typed config plus a function from model to model."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from slimsweep.compressors.plans import QuantizationPlan
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.task import TaskData

Config = TypeVar("Config")


@dataclass
class CompressedModel:
    """A float module plus the decisions that its runtime realises at export."""

    module: torch.nn.Module
    quantization: QuantizationPlan | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # what stages measured, logged


@dataclass(frozen=True)
class StageContext:
    """What a stage may draw on besides the model: the task (its data and losses), the
    uncompressed teacher that fine-tuning stages distil from, a seed, and the device to
    compute on (the trial's GPU when it has one). Stages take and return modules on the
    CPU; one that computes on `device` moves its work there and back."""

    data: TaskData
    seed: int = 0
    task: Any = None  # the Task: fine-tuning stages use its optional `loss`
    teacher: torch.nn.Module | None = None  # on `device`
    device: str = "cpu"
    # Called by fine-tuning stages after each training step with the module in training; it
    # may stop the trial early (raising StoppedEarly) when the quality it reads is too low.
    after_step: Callable[[torch.nn.Module], None] | None = None


class StoppedEarly(Exception):
    """A fine-tuning trial stopped because its intermediate quality fell below the floor."""

    def __init__(self, reason: str, reports: list[tuple[int, float]]) -> None:
        super().__init__(reason)
        self.reason, self.reports = reason, reports  # (step, quality) read so far


def on_device(inputs: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in inputs.items()}


@dataclass(frozen=True)
class Stage(Generic[Config]):
    name: str
    config_type: type[Config]
    apply: Callable[[CompressedModel, Config, StageContext], CompressedModel]

    @property
    def quantizes(self) -> bool:
        """A stage quantizes when its config declares the plan it fixes (`plan()`); no stage
        may follow it, since later weight changes would void that plan."""
        return callable(getattr(self.config_type, "plan", None))

    def plan(self, params: dict[str, Any]) -> QuantizationPlan | None:
        """The plan these params fix, known before the stage runs (codes are chosen then)."""
        return self.config_type(**params).plan() if self.quantizes else None  # type: ignore[attr-defined]

    def run(
        self, model: CompressedModel, params: dict[str, Any], ctx: StageContext
    ) -> CompressedModel:
        return self.apply(model, self.config_type(**params), ctx)


STAGES: Registry[Stage[Any]] = Registry("compressor stage")


def register_stage(
    name: str, config_type: type[Config]
) -> Callable[[Callable[[CompressedModel, Config, StageContext], CompressedModel]], Any]:
    """Register `fn(model, config, ctx) -> model` as stage `name`, configured by `config_type`.
    A config with a `plan()` method makes a quantizing stage, which must end its recipe."""

    def decorate(fn: Callable[[CompressedModel, Config, StageContext], CompressedModel]) -> Any:
        STAGES.add(name, Stage(name, config_type, fn))
        return fn

    return decorate
