"""Imports that fill the registries, in the driver and in every worker alike."""

import importlib
import sys
from dataclasses import dataclass

from slimsweep.sweeps.errors import ConfigError


@dataclass(frozen=True)
class Plugins:
    """The user's own modules (stages, runtimes, tasks) and the directory they live in.

    `search_dir` is the directory the sweep was launched from, so a module beside the
    user's config imports in the driver and in every worker without installing it.
    """

    modules: tuple[str, ...] = ()
    search_dir: str = ""

    def load(self) -> None:
        importlib.import_module("slimsweep.compressors")
        importlib.import_module("slimsweep.sweeps.runtimes")
        if self.modules and self.search_dir and self.search_dir not in sys.path:
            sys.path.append(self.search_dir)
        for name in self.modules:
            try:
                importlib.import_module(name)
            except ImportError as error:
                raise ConfigError(f"plugins: cannot import {name!r}: {error}") from None
