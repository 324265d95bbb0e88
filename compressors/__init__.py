"""Compression techniques, one module each; every module registers its stage on import."""

import importlib
import pkgutil

from slimsweep.compressors.base import (
    STAGES,
    CompressedModel,
    QuantizationPlan,
    Stage,
    StageContext,
    register_stage,
)

__all__ = [
    "STAGES",
    "CompressedModel",
    "QuantizationPlan",
    "Stage",
    "StageContext",
    "register_stage",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
