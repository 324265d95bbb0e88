"""The runtime contract: export an artifact, and load it back as a prediction function."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from slimsweep.compressors.base import CompressedModel
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict
from slimsweep.sweeps.typed import typed


class Runtime(Protocol):
    config_type: ClassVar[type[RuntimeConfig]]
    artifact_name: ClassVar[str]

    def __init__(self, config: RuntimeConfig) -> None: ...

    @staticmethod
    def unavailable() -> str | None:
        """Why this runtime cannot run on this machine (no GPU, no provider), or None."""

    @staticmethod
    def refusal(stage: str, key: str, value: object) -> str | None:
        """Why this runtime cannot realise `stage` with `key=value`, or None if it can.
        Asked for every value a search space can produce, before any trial launches."""

    def export(
        self, model: CompressedModel, example: Inputs, calibration: list[Inputs], path: Path
    ) -> None:
        """Write the deployable file whose bytes are the reported size."""

    def load(self, path: Path) -> Predict:
        """Run the artifact as it would be deployed: this is what accuracy and latency measure."""


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


def runtime_config(node: Mapping[str, Any]) -> RuntimeConfig:
    """The `runtime` config node, typed by the named runtime's own config class."""
    runtime = RUNTIMES.get(str(node.get("name")))
    return typed(runtime.config_type, node, "runtime")


def build_runtime(config: RuntimeConfig) -> Runtime:
    return RUNTIMES.get(config.name)(config)
