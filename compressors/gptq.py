"""GPTQ (Frantar et al., 2022): round a linear's weights column by column and push each
column's rounding error onto the columns not yet rounded, weighted by the inverse Hessian
of the layer's reconstruction error on calibration inputs.

Layers are done in order, each one calibrated on inputs from the already-quantized layers
before it. The codes go to the runtime as they are (int4_weight, MatMulNBits).
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.grouped import from_codes, group_grid, pad_to_groups, to_codes
from slimsweep.compressors.layers import layer_inputs
from slimsweep.compressors.low_bit import LowBitConfig, round_linears
from slimsweep.compressors.plans import GroupQuantized
from slimsweep.sweeps.errors import require_range


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
    identity = torch.eye(columns, dtype=hessian.dtype, device=hessian.device)
    hessian += damping * hessian.diagonal().mean() * identity
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


@register_stage("gptq", GptqConfig)
def gptq(model: CompressedModel, config: GptqConfig, ctx: StageContext) -> CompressedModel:
    def round_layer(_: str, linear: torch.nn.Linear) -> GroupQuantized:
        inputs = layer_inputs(model.module, linear, ctx.data.calibration)
        return gptq_round(linear.weight, inputs, config, config.damping)

    return round_linears(model, "gptq", config, round_layer, ctx.device)
