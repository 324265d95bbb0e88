"""Post-training quantization: decides the plan; the runtime realises it with its kernels.

fp32 keeps the model as it is; fp16 and bf16 store weights in half precision; int8_dynamic
quantizes weights ahead of time and activations at run time; int8_static also fixes
activation ranges from the task's calibration split with the chosen statistics;
int8_weight stores the weights of matrix multiplications as INT8, one scale per output
channel, with float activations; int4_weight packs those weights to 4 bits in groups of
`group_size` input channels (and, with `embeddings`, the embedding tables in groups of `group_size`
features). Each name makes one typed plan (`compressors/plans.py`).
"""

from dataclasses import dataclass, replace

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.plans import (
    CALIBRATIONS,
    GROUP_SIZES,
    PRECISIONS,
    QuantizationPlan,
    WeightOnlyPlan,
)
from slimsweep.sweeps.errors import ConfigError, require_choice


@dataclass(frozen=True)
class QuantizeConfig:
    precision: str = "int8_static"
    per_channel: bool = True  # one scale per output channel of a weight (int8 only)
    calibration: str = "minmax"  # activation statistics (int8_static only)
    group_size: int = 128  # input channels per scale (int4_weight only)
    symmetric: bool = False  # zero points fixed mid-range (weights; int8_static activations too)
    embeddings: bool = False  # embedding tables to 4 bits too (int4_weight only)

    def __post_init__(self) -> None:
        require_choice("precision", self.precision, tuple(PRECISIONS))
        require_choice("calibration", self.calibration, CALIBRATIONS)
        require_choice("group_size", self.group_size, GROUP_SIZES)
        for key in ("per_channel", "symmetric", "embeddings"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be true or false")
        if self.embeddings and not isinstance(self.plan(), WeightOnlyPlan):
            raise ConfigError(
                f"embeddings=true quantizes embedding tables to 4 bits: precision must be "
                f"int4_weight, not {self.precision!r}"
            )

    def plan(self) -> QuantizationPlan | None:
        return PRECISIONS[self.precision](self)


@register_stage("quantize", QuantizeConfig)
def quantize(model: CompressedModel, config: QuantizeConfig, ctx: StageContext) -> CompressedModel:
    if model.quantization is not None:
        raise ValueError("quantize runs once per recipe; this model is already quantized")
    return replace(model, quantization=config.plan())
