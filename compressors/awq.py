"""AWQ (Lin et al., 2023): before rounding, scale up the input channels that carry large
activations, so their weights lose less to rounding, and divide the activations by the
same factors. The scale s = mean|x|^α per input channel is searched over α on calibration
data for the least output error.

The division runs as one elementwise multiply in front of the layer (a real op in the
artifact; AWQ's folding of it into a preceding norm is model-specific and not done here).
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.compressors.layers import layer_inputs, replace_child
from slimsweep.compressors.low_bit import LowBitConfig, round_linears
from slimsweep.compressors.plans import GroupQuantized
from slimsweep.sweeps.errors import require_range


@dataclass(frozen=True)
class AwqConfig(LowBitConfig):
    grid: int = 20  # α values tried, evenly spaced in [0, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_range("grid", self.grid, 1, 100)


class InputScaled(torch.nn.Module):
    """`linear(x * inverse_scale)`: the activations' half of AWQ's rescaling."""

    def __init__(self, linear: torch.nn.Linear, inverse_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inverse_scale", inverse_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inverse_scale)


def awq_scale(
    weight: torch.Tensor, inputs: torch.Tensor, config: LowBitConfig, grid: int
) -> torch.Tensor:
    """The per-input-channel scale with the least output error after rounding (α=0 is plain
    rounding, so the result is never worse than it on these inputs)."""
    magnitude = inputs.abs().mean(dim=0)
    # channels silent in calibration must not get huge inverse scales for other inputs
    magnitude = magnitude.clamp(min=0.01 * float(magnitude.mean()) + 1e-8)
    reference = inputs @ weight.T
    best, best_error = torch.ones_like(magnitude), float("inf")
    for step in range(grid):
        scale = magnitude ** (step / grid)
        scale = scale / (scale.max() * scale.min()).sqrt()
        rounded = round_to_nearest(weight * scale, config.bits, config.group_size, config.symmetric)
        output = (inputs / scale) @ rounded.dequantize(weight.shape[1]).T
        error = (output - reference).pow(2).mean().item()
        if error < best_error:
            best, best_error = scale, error
    return best


@register_stage("awq", AwqConfig)
def awq(model: CompressedModel, config: AwqConfig, ctx: StageContext) -> CompressedModel:
    def round_layer(name: str, linear: torch.nn.Linear) -> GroupQuantized:
        inputs = layer_inputs(model.module, linear, ctx.data.calibration)
        with torch.no_grad():
            scale = awq_scale(linear.weight, inputs, config, config.grid)
            linear.weight.mul_(scale)
        replace_child(model.module, name, InputScaled(linear, 1.0 / scale))
        return round_to_nearest(linear.weight, config.bits, config.group_size, config.symmetric)

    return round_linears(model, "awq", config, round_layer, ctx.device)
