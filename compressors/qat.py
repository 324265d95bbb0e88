"""Quantization-aware training: fine-tune with every linear's weight passed through its
low-bit grid in the forward pass (straight-through gradients to the float weight), then
convert for real: the codes the last forward used are what the runtime packs."""

from dataclasses import dataclass

import torch
from torch.nn.utils import parametrize

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.finetune import TrainConfig, finetune
from slimsweep.compressors.grouped import fake_quantize, round_to_nearest
from slimsweep.compressors.layers import named_linears
from slimsweep.compressors.low_bit import LowBitConfig, require_unquantized, round_linears
from slimsweep.compressors.plans import GroupQuantized


@dataclass(frozen=True)
class QatConfig(TrainConfig, LowBitConfig):
    learning_rate: float = 0.0003  # gentler than recovery fine-tuning: the model is trained

    def __post_init__(self) -> None:
        TrainConfig.__post_init__(self)
        LowBitConfig.__post_init__(self)


class StraightThrough(torch.nn.Module):
    """Forward: the weight on its grid. Backward: the identity (the STE)."""

    def __init__(self, config: LowBitConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        c = self.config
        return weight + (fake_quantize(weight, c.bits, c.group_size, c.symmetric) - weight).detach()


@register_stage("qat", QatConfig)
def qat(model: CompressedModel, config: QatConfig, ctx: StageContext) -> CompressedModel:
    require_unquantized(model, "qat")  # before spending the fine-tuning budget
    linears = [linear for _, linear in named_linears(model.module)]
    for linear in linears:
        parametrize.register_parametrization(linear, "weight", StraightThrough(config))
    try:
        finetune(model.module, ctx, config)
    finally:
        for linear in linears:
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=False)

    def round_layer(_: str, linear: torch.nn.Linear) -> GroupQuantized:
        # the grid of the last forward: what training converged to is what ships
        return round_to_nearest(linear.weight, config.bits, config.group_size, config.symmetric)

    return round_linears(model, "qat", config, round_layer)
