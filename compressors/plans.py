"""Quantization plans: what a quantizing stage decided, as types that runtimes realise.

A stage decides *what* (a plan); each runtime holds one handler per plan type that realises
it with its own kernels (torchao's `quantize_(model, config)` pattern). A runtime supports a
plan when it has a handler for the plan's type, so a new runtime or kernel is one handler and
no list of precision names has to be kept in step anywhere else.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from slimsweep.sweeps.errors import require_choice

HALF_DTYPES = ("fp16", "bf16")
CALIBRATIONS = ("minmax", "percentile", "entropy")  # statistics for static activation ranges
GROUP_SIZES = (16, 32, 64, 128, 256)  # input channels sharing one scale on a low-bit grid
WEIGHT_BITS = (3, 4)  # 3 rounds to 8 levels, stored in the same 4-bit container


@dataclass(frozen=True)
class GroupQuantized:
    """A linear weight a stage already rounded to a grid (GPTQ, AWQ, QAT), so the runtime
    packs these exact codes instead of rounding the float weight again."""

    codes: torch.Tensor  # uint8 [out, in padded to whole groups], each < 2**bits
    scales: torch.Tensor  # float32 [out, groups]
    zeros: torch.Tensor  # uint8 [out, groups]: the code that stands for 0.0
    group_size: int

    def to(self, device: str) -> "GroupQuantized":
        return GroupQuantized(
            self.codes.to(device), self.scales.to(device), self.zeros.to(device), self.group_size
        )

    def dequantize(self, in_features: int) -> torch.Tensor:
        scales = self.scales.repeat_interleave(self.group_size, dim=1)
        zeros = self.zeros.repeat_interleave(self.group_size, dim=1).float()
        return ((self.codes.float() - zeros) * scales)[:, :in_features]


def weight_key(weight: torch.Tensor) -> str:
    """Identifies a float weight [out, in] by content, so it is found again after export."""
    data = weight.detach().float().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class HalfPlan:
    """Weights, and compute where the runtime has the kernels, in a 16-bit float type."""

    dtype: str = "fp16"

    def __post_init__(self) -> None:
        require_choice("dtype", self.dtype, HALF_DTYPES)


@dataclass(frozen=True)
class Int8Plan:
    """INT8 weights and activations. Activation ranges are fixed ahead of time from the
    task's calibration split with `calibration`'s statistics (static), or found at run time
    when `calibration` is None (dynamic)."""

    per_channel: bool = True  # one weight scale per output channel
    symmetric: bool = False  # zero points fixed mid-range
    calibration: str | None = "minmax"

    def __post_init__(self) -> None:
        if self.calibration is not None:
            require_choice("calibration", self.calibration, CALIBRATIONS)

    @property
    def dynamic(self) -> bool:
        return self.calibration is None


@dataclass(frozen=True)
class WeightOnlyPlan:
    """Low-bit weights of matrix multiplications, one scale and zero point per `group_size`
    input channels; activations stay float.

    `codes` is None when the runtime rounds each weight to nearest. A stage that chose its
    codes (GPTQ, AWQ, QAT) hands them over keyed by `weight_key` of the float weight they
    replace; the runtime packs exactly those, and a weight without its codes is an error."""

    bits: int = 4
    group_size: int = 128
    symmetric: bool = False
    embeddings: bool = False  # embedding tables (constant Gathers) on the same grid too
    codes: Mapping[str, GroupQuantized] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        require_choice("bits", self.bits, WEIGHT_BITS)
        require_choice("group_size", self.group_size, GROUP_SIZES)


@dataclass(frozen=True)
class Int8WeightOnlyPlan:
    """INT8 weights of matrix multiplications, one symmetric scale per output channel;
    activations stay float. Half the bytes of fp16 with near-fp16 quality, for runtimes
    whose kernels read 8-bit weights directly."""


QuantizationPlan = HalfPlan | Int8Plan | WeightOnlyPlan | Int8WeightOnlyPlan

FLOAT = "fp32"  # the precision that makes no plan: the model stays as it is
# The `quantize` stage's precision names and the plan each one makes.
PRECISIONS: dict[str, Callable[[Any], QuantizationPlan | None]] = {
    FLOAT: lambda config: None,
    "fp16": lambda config: HalfPlan("fp16"),
    "bf16": lambda config: HalfPlan("bf16"),
    "int8_dynamic": lambda config: Int8Plan(config.per_channel, config.symmetric, None),
    "int8_static": lambda config: Int8Plan(
        config.per_channel, config.symmetric, config.calibration
    ),
    "int8_weight": lambda config: Int8WeightOnlyPlan(),
    "int4_weight": lambda config: WeightOnlyPlan(
        4, config.group_size, config.symmetric, config.embeddings
    ),
}
