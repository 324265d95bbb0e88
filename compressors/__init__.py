"""Compression techniques, one module each; every module registers its stage on import."""

import importlib
import pkgutil

from slimsweep.compressors.base import (
    STAGES,
    CompressedModel,
    Stage,
    StageContext,
    register_stage,
)
from slimsweep.compressors.plans import (
    HalfPlan,
    Int8Plan,
    Int8WeightOnlyPlan,
    QuantizationPlan,
    WeightOnlyPlan,
)

__all__ = [
    "STAGES",
    "CompressedModel",
    "HalfPlan",
    "Int8Plan",
    "Int8WeightOnlyPlan",
    "QuantizationPlan",
    "Stage",
    "StageContext",
    "WeightOnlyPlan",
    "register_stage",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "plans"):
        importlib.import_module(f"{__name__}.{_module.name}")
