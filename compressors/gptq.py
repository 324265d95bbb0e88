"""GPTQ (Frantar et al., 2022): round a linear's weights column by column and push each
column's rounding error onto the columns not yet rounded, weighted by the inverse Hessian
of the layer's reconstruction error on calibration inputs.

Layers are done in order, each one calibrated on inputs from the already-quantized layers
before it. The codes go to the runtime as they are (int4_weight, MatMulNBits).
"""

from dataclasses import dataclass, replace

import torch

from slimsweep.compressors.base import (
    CompressedModel,
    GroupQuantized,
    QuantizationPlan,
    StageContext,
    register_stage,
    weight_key,
)
from slimsweep.compressors.grouped import from_codes, group_grid, pad_to_groups, to_codes
from slimsweep.compressors.layers import layer_inputs, named_linears
from slimsweep.compressors.quantize import GROUP_SIZES
from slimsweep.sweeps.errors import require_choice, require_range

WEIGHT_BITS = (3, 4)


@dataclass(frozen=True)
class LowBitConfig:
    """Shared by the low-bit weight stages: the grid their codes are packed on."""

    precision: str = "int4_weight"  # what the runtime runs: grouped low-bit matmuls
    bits: int = 4  # 3 rounds to 8 levels, stored in the same 4-bit container
    group_size: int = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        require_choice("precision", self.precision, ("int4_weight",))
        require_choice("bits", self.bits, WEIGHT_BITS)
        require_choice("group_size", self.group_size, GROUP_SIZES)
        require_choice("symmetric", self.symmetric, (True, False))

    def plan(self, rounded: dict[str, GroupQuantized]) -> QuantizationPlan:
        return QuantizationPlan(
            self.precision,
            group_size=self.group_size,
            symmetric=self.symmetric,
            bits=self.bits,
            rounded=rounded,
        )


@dataclass(frozen=True)
class GptqConfig(LowBitConfig):
    damping: float = 0.01  # added to the Hessian's diagonal, as a fraction of its mean

    def __post_init__(self) -> None:
        super().__post_init__()
        require_range("damping", self.damping, 0.0, 1.0, low_inclusive=False)


def gptq_round(
    weight: torch.Tensor, inputs: torch.Tensor, config: LowBitConfig, damping: float
) -> GroupQuantized:
    """GPTQ's rounding of one weight [out, in] given its calibration inputs [n, in]."""
    size = config.group_size
    work = pad_to_groups(weight.detach().double(), size)
    columns = work.shape[1]
    x = pad_to_groups(inputs.double(), size)
    hessian = 2.0 * x.T @ x / max(len(x), 1)
    dead = hessian.diagonal() == 0
    hessian[dead, dead] = 1.0
    work[:, dead] = 0.0
    hessian += damping * hessian.diagonal().mean() * torch.eye(columns, dtype=hessian.dtype)
    inverse = torch.linalg.cholesky(
        torch.cholesky_inverse(torch.linalg.cholesky(hessian)), upper=True
    )
    codes = torch.zeros_like(work)
    scales, zeros = [], []
    for start in range(0, columns, size):
        block = work[:, start : start + size].clone()
        scale, zero = group_grid(block, config.bits, config.symmetric)
        block_inverse = inverse[start : start + size, start : start + size]
        errors = torch.zeros_like(block)
        for i in range(size):
            column = block[:, i : i + 1]
            code = to_codes(column, scale, zero, config.bits)
            codes[:, start + i : start + i + 1] = code
            error = (column - from_codes(code, scale, zero)) / block_inverse[i, i]
            block[:, i:] -= error @ block_inverse[i : i + 1, i:]
            errors[:, i : i + 1] = error
        work[:, start + size :] -= errors @ inverse[start : start + size, start + size :]
        scales.append(scale)
        zeros.append(zero)
    return GroupQuantized(
        codes.to(torch.uint8),
        torch.cat(scales, dim=1).float(),
        torch.cat(zeros, dim=1).to(torch.uint8),
        size,
    )


def set_rounded(linear: torch.nn.Linear, rounded: GroupQuantized) -> str:
    """Put the rounded weight in the model (so torch runs what ORT will) and key it."""
    with torch.no_grad():
        linear.weight.copy_(rounded.dequantize(linear.in_features))
    return weight_key(linear.weight)


@register_stage("gptq", GptqConfig, quantizes=True)
def gptq(model: CompressedModel, config: GptqConfig, ctx: StageContext) -> CompressedModel:
    if model.quantization is not None:
        raise ValueError("gptq quantizes; this model is already quantized")
    rounded = {}
    for _, linear in list(named_linears(model.module)):
        inputs = layer_inputs(model.module, linear, ctx.data.calibration)
        codes = gptq_round(linear.weight, inputs, config, config.damping)
        rounded[set_rounded(linear, codes)] = codes
    if not rounded:
        raise ValueError("gptq found no nn.Linear layers to quantize")
    return replace(model, quantization=config.plan(rounded))
