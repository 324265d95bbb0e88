"""The runtime contract: export an artifact, and load it back as a prediction function."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from slimsweep.compressors.base import CompressedModel
from slimsweep.compressors.plans import QuantizationPlan
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.runtimes.shapes import DynamicAxes
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict
from slimsweep.sweeps.typed import typed

Handler = TypeVar("Handler", bound=Callable[..., Any])


class PlanHandlers(Generic[Handler]):
    """A runtime's realisers, one per plan type: a runtime supports a plan when it holds a
    handler for the plan's type. A float model (no plan) needs none."""

    def __init__(self, runtime: str, without: str = "") -> None:
        self.runtime = runtime
        self.without = without  # why plan types without a handler cannot run here
        self._handlers: dict[type, Handler] = {}
        self._limits: dict[type, Callable[[Any], str | None]] = {}

    def register(
        self, plan_type: type, limits: Callable[[Any], str | None] | None = None
    ) -> Callable[[Handler], Handler]:
        """`limits(plan)` says why a plan of this type is still out of the handler's reach
        (a group size its kernel lacks), or None."""

        def decorate(handler: Handler) -> Handler:
            if plan_type in self._handlers:
                raise ValueError(f"{self.runtime} has two handlers for {plan_type.__name__}")
            self._handlers[plan_type] = handler
            if limits is not None:
                self._limits[plan_type] = limits
            return handler

        return decorate

    def refusal(self, plan: QuantizationPlan | None) -> str | None:
        """Why this runtime cannot realise `plan`, or None if it can."""
        if plan is None:
            return None
        if type(plan) in self._handlers:
            limit = self._limits.get(type(plan), lambda plan: None)(plan)
            return f"{plan} is beyond its kernels: {limit}" if limit else None
        handled = ", ".join(t.__name__ for t in self._handlers)
        realised = f"it has handlers for {handled} only" if handled else "it runs float models only"
        because = f"; {self.without}" if self.without else ""
        return f"no handler for {plan}: {realised}{because}"

    def get(self, plan: QuantizationPlan) -> Handler:
        reason = self.refusal(plan)
        if reason:
            raise ValueError(f"{self.runtime}: {reason}")
        return self._handlers[type(plan)]


class Runtime(Protocol):
    config_type: ClassVar[type[RuntimeConfig]]
    artifact_name: ClassVar[str]
    gpu: ClassVar[bool]  # runs the artifact on a GPU: a trial must be given one
    # Asked about every plan a search space can produce, before any trial launches.
    handlers: ClassVar[PlanHandlers[Any]]
    config: RuntimeConfig

    def __init__(self, config: RuntimeConfig) -> None: ...

    @staticmethod
    def unavailable() -> str | None:
        """Why this runtime cannot run on this machine (no GPU, no provider), or None."""

    def export(
        self,
        model: CompressedModel,
        example: Inputs,
        calibration: list[Inputs],
        path: Path,
        axes: DynamicAxes | None = None,
    ) -> None:
        """Write the deployable file whose bytes are the reported size; `axes` stay dynamic
        in it (None: the batch axis of every input)."""

    def load(self, path: Path) -> Predict:
        """Run the artifact as it would be deployed: this is what accuracy and latency measure."""

    def artifact_axes(self, axes: DynamicAxes) -> DynamicAxes:
        """The input axes an artifact exported with `axes` leaves dynamic (fewer, where the
        runtime compiles a fixed shape)."""

    def measured_as(self, path: Path) -> dict[str, str]:
        """How the artifact at `path` is run and its latencies taken (execution mode,
        precision policy), logged with them and written on its model card."""

    def on_calling_thread(self) -> bool:
        """Whether a loaded artifact computes on the thread that calls it (then that thread's
        CPU time is what its runs cost, whatever else the node runs)."""


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


def runtime_config(node: Mapping[str, Any]) -> RuntimeConfig:
    """The `runtime` config node, typed by the named runtime's own config class."""
    runtime = RUNTIMES.get(str(node.get("name")))
    return typed(runtime.config_type, node, "runtime")


def build_runtime(config: RuntimeConfig) -> Runtime:
    return RUNTIMES.get(config.name)(config)
