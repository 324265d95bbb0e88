"""The stage contract: a typed config plus a function from model to model."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.task import TaskData

Config = TypeVar("Config")


@dataclass(frozen=True)
class QuantizationPlan:
    """What to quantize and how; each runtime realises it with its own integer kernels."""

    precision: str  # fp16 | int8_dynamic | int8_static | int4_weight
    per_channel: bool = True
    calibration: str = "minmax"  # static activation ranges: minmax | percentile | entropy
    group_size: int = 128  # input channels sharing one scale (int4_weight)


@dataclass
class CompressedModel:
    """A float module plus the decisions that its runtime realises at export."""

    module: torch.nn.Module
    quantization: QuantizationPlan | None = None


@dataclass(frozen=True)
class StageContext:
    """What a stage may draw on besides the model: the task's data and a seed."""

    data: TaskData
    seed: int = 0


@dataclass(frozen=True)
class Stage(Generic[Config]):
    name: str
    config_type: type[Config]
    apply: Callable[[CompressedModel, Config, StageContext], CompressedModel]

    def run(
        self, model: CompressedModel, params: dict[str, Any], ctx: StageContext
    ) -> CompressedModel:
        return self.apply(model, self.config_type(**params), ctx)


STAGES: Registry[Stage[Any]] = Registry("compressor stage")


def register_stage(
    name: str, config_type: type[Config]
) -> Callable[[Callable[[CompressedModel, Config, StageContext], CompressedModel]], Any]:
    """Register `fn(model, config, ctx) -> model` as stage `name`, configured by `config_type`."""

    def decorate(fn: Callable[[CompressedModel, Config, StageContext], CompressedModel]) -> Any:
        STAGES.add(name, Stage(name, config_type, fn))
        return fn

    return decorate
