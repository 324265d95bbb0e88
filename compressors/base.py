"""The stage contract: a typed config plus a function from model to model."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.task import TaskData

Config = TypeVar("Config")


@dataclass(frozen=True)
class GroupQuantized:
    """A linear weight a stage already rounded to a grid (GPTQ, AWQ, QAT), so the runtime
    packs these exact codes instead of rounding the float weight again."""

    codes: torch.Tensor  # uint8 [out, in padded to whole groups], each < 2**bits
    scales: torch.Tensor  # float32 [out, groups]
    zeros: torch.Tensor  # uint8 [out, groups]: the code that stands for 0.0
    group_size: int

    def dequantize(self, in_features: int) -> torch.Tensor:
        scales = self.scales.repeat_interleave(self.group_size, dim=1)
        zeros = self.zeros.repeat_interleave(self.group_size, dim=1).float()
        return ((self.codes.float() - zeros) * scales)[:, :in_features]


@dataclass(frozen=True)
class QuantizationPlan:
    """What to quantize and how; each runtime realises it with its own integer kernels."""

    precision: str  # fp16 | bf16 | int8_dynamic | int8_static | int4_weight
    per_channel: bool = True
    calibration: str = "minmax"  # static activation ranges: minmax | percentile | entropy
    group_size: int = 128  # input channels sharing one scale (int4_weight)
    symmetric: bool = False  # zero point fixed at the middle of the range
    bits: int = 4  # weight bits on the int4_weight grid (3 uses the same 4-bit container)
    embeddings: bool = False  # int4_weight: embedding tables (constant Gathers) on the grid too
    # Precomputed grids, keyed by `weight_key(weight)` of the float weight they replace.
    rounded: dict[str, GroupQuantized] = field(default_factory=dict, compare=False)


def weight_key(weight: torch.Tensor) -> str:
    """Identifies a float weight [out, in] by content, so it is found again after export."""
    data = weight.detach().float().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


@dataclass
class CompressedModel:
    """A float module plus the decisions that its runtime realises at export."""

    module: torch.nn.Module
    quantization: QuantizationPlan | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # what stages measured, logged


@dataclass(frozen=True)
class StageContext:
    """What a stage may draw on besides the model: the task (its data and losses), the
    uncompressed teacher that fine-tuning stages distil from, and a seed."""

    data: TaskData
    seed: int = 0
    task: Any = None  # the Task: fine-tuning stages use its optional `loss`
    teacher: torch.nn.Module | None = None


@dataclass(frozen=True)
class Stage(Generic[Config]):
    name: str
    config_type: type[Config]
    apply: Callable[[CompressedModel, Config, StageContext], CompressedModel]
    quantizes: bool = False  # fixes a quantization plan: no stage may follow it

    def run(
        self, model: CompressedModel, params: dict[str, Any], ctx: StageContext
    ) -> CompressedModel:
        return self.apply(model, self.config_type(**params), ctx)


STAGES: Registry[Stage[Any]] = Registry("compressor stage")


def register_stage(
    name: str, config_type: type[Config], quantizes: bool = False
) -> Callable[[Callable[[CompressedModel, Config, StageContext], CompressedModel]], Any]:
    """Register `fn(model, config, ctx) -> model` as stage `name`, configured by `config_type`.
    A stage that `quantizes` must end its recipe: later weight changes would void its plan."""

    def decorate(fn: Callable[[CompressedModel, Config, StageContext], CompressedModel]) -> Any:
        STAGES.add(name, Stage(name, config_type, fn, quantizes))
        return fn

    return decorate
