"""What the low-bit weight stages (GPTQ, AWQ, QAT) share: the grid their codes are packed
on, and the walk over a model's linears that rounds each one and hands the codes on."""

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from slimsweep.compressors.base import CompressedModel
from slimsweep.compressors.layers import named_linears
from slimsweep.compressors.plans import (
    GroupQuantized,
    WeightOnlyPlan,
    weight_key,
)
from slimsweep.sweeps.errors import require_choice


@dataclass(frozen=True)
class LowBitConfig:
    """Shared by the low-bit weight stages: the grid their codes are packed on."""

    bits: int = 4  # 3 rounds to 8 levels, stored in the same 4-bit container
    group_size: int = 128
    symmetric: bool = False
    embeddings: bool = False  # embedding tables to the same grid too (rounded to nearest)

    def __post_init__(self) -> None:
        require_choice("symmetric", self.symmetric, (True, False))
        require_choice("embeddings", self.embeddings, (True, False))
        self.plan()  # the plan checks bits and group_size

    def plan(self, codes: dict[str, GroupQuantized] | None = None) -> WeightOnlyPlan:
        """Grouped low-bit matmuls; the stage hands over the codes it chose once it ran."""
        return WeightOnlyPlan(self.bits, self.group_size, self.symmetric, self.embeddings, codes)


def set_rounded(linear: torch.nn.Linear, rounded: GroupQuantized) -> str:
    """Put the rounded weight in the model (so torch runs what ORT will) and key it."""
    with torch.no_grad():
        linear.weight.copy_(rounded.dequantize(linear.in_features))
    return weight_key(linear.weight)


def require_unquantized(model: CompressedModel, stage: str) -> None:
    if model.quantization is not None:
        raise ValueError(f"{stage} quantizes; this model is already quantized")


RoundLayer = Callable[[str, torch.nn.Linear], GroupQuantized]


def round_linears(
    model: CompressedModel,
    stage: str,
    config: LowBitConfig,
    round_layer: RoundLayer,
    device: str = "cpu",
) -> CompressedModel:
    """Round every linear in order with `round_layer(name, linear)`, calibrating on
    `device`; the model runs the rounded weights and its plan carries their codes (on the
    CPU) to the runtime."""
    require_unquantized(model, stage)
    rounded = {}
    model.module.to(device)
    try:
        for name, linear in list(named_linears(model.module)):
            codes = round_layer(name, linear).to("cpu")
            rounded[set_rounded(linear, codes)] = codes
    finally:
        model.module.to("cpu")
    if not rounded:
        raise ValueError(f"{stage} found no nn.Linear layers to quantize")
    return replace(model, quantization=config.plan(codes=rounded))
