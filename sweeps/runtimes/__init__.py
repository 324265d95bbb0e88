"""Runtimes export a compressed model to a deployable artifact and run it for measurement."""

import importlib
import pkgutil

from slimsweep.sweeps.runtimes.base import RUNTIMES, Runtime, build_runtime, runtime_config

__all__ = ["RUNTIMES", "Runtime", "build_runtime", "runtime_config"]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
