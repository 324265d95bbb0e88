"""PyTorch on the CPU or a CUDA GPU: the artifact is a torch.export program (.pt2), exported
on the runtime's own device with its batch (and any axis the task names) dynamic, and run
in the execution mode a deployment would use."""

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimsweep.compressors.base import CompressedModel
from slimsweep.sweeps.errors import ConfigError, require_choice
from slimsweep.sweeps.runtimes.base import RUNTIMES
from slimsweep.sweeps.runtimes.shapes import (
    DynamicAxes,
    dynamic_axes,
    export_dims,
    fixed_axes,
    widened,
)
from slimsweep.sweeps.runtimes.torch_plans import TORCH_CPU_HANDLERS, TORCH_CUDA_HANDLERS
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict

# How a deployment runs the loaded program: mode → (module → the callable that is timed).
# On a GPU, torch.compile's "max-autotune" also replays CUDA graphs (as torch defines it);
# "cuda_graphs" is inductor's "reduce-overhead": its kernels captured and replayed as one graph.
EXECUTION_MODES: dict[str, Callable[[torch.nn.Module], Callable[..., torch.Tensor]]] = {
    "eager": lambda module: module,
    "compile": lambda module: torch.compile(module),
    "max_autotune": lambda module: torch.compile(module, mode="max-autotune"),
    "cuda_graphs": lambda module: torch.compile(module, mode="reduce-overhead"),
}
CPU_MODES = ("eager", "compile", "max_autotune")


def load_program(path: Path) -> tuple[torch.nn.Module, torch.dtype]:
    """A saved program as a module, and the dtype its float inputs were exported with.
    Importing this module registers slimsweep's packed ops, which torch.export.load looks
    up by name."""
    program = torch.export.load(str(path))
    inputs = set(program.graph_signature.user_inputs)
    examples = [n.meta["val"] for n in program.graph.nodes if n.name in inputs]
    floats = (example.dtype for example in examples if example.is_floating_point())
    return program.module(), next(floats, torch.float32)


@dataclass
class TorchCpuConfig(RuntimeConfig):
    mode: str = "eager"  # eager | compile | max_autotune (torch.compile's modes, inductor)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("runtime.mode", self.mode, self.modes())

    @staticmethod
    def modes() -> tuple[str, ...]:
        return CPU_MODES


@dataclass
class TorchCudaConfig(TorchCpuConfig):
    # TF32 matmuls and convolutions: faster fp32, with ~1e-3 relative error (off: IEEE fp32,
    # the CPU twin's outputs). Recorded with every latency it produced.
    tf32: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.tf32, bool):
            raise ConfigError(f"runtime.tf32={self.tf32!r} must be true or false")

    @staticmethod
    def modes() -> tuple[str, ...]:
        return tuple(EXECUTION_MODES)


@RUNTIMES.register("torch_cpu")
class TorchCpuRuntime:
    config_type: type[TorchCpuConfig] = TorchCpuConfig
    artifact_name = "model.pt2"
    device = "cpu"
    gpu = False
    handlers = TORCH_CPU_HANDLERS

    def __init__(self, config: TorchCpuConfig) -> None:
        self.config = config

    def export(
        self,
        model: CompressedModel,
        example: Inputs,
        calibration: list[Inputs],
        path: Path,
        axes: DynamicAxes | None = None,
    ) -> None:
        # Exported where it runs: a program asserts the device of its inputs and constants.
        module = copy.deepcopy(model.module).eval().to(self.device)
        example = {k: v.to(self.device) for k, v in example.items()}
        if model.quantization is not None:
            realise = self.handlers.get(model.quantization)
            module, example = realise(module, example, model.quantization)
        axes = axes or dynamic_axes(example)
        with self.precision():
            program = torch.export.export(
                module, (), kwargs=widened(example, axes), dynamic_shapes=export_dims(axes)
            )
        fixed = fixed_axes(program, axes)
        if fixed:
            raise ValueError(f"the model does not run at other sizes of {'; '.join(fixed)}")
        torch.export.save(program, str(path))

    @staticmethod
    def unavailable() -> str | None:
        return None

    def on_calling_thread(self) -> bool:
        """One intra-op thread on the CPU computes on the caller's thread."""
        return self.device == "cpu" and self.config.threads == 1

    def artifact_axes(self, axes: DynamicAxes) -> DynamicAxes:
        return axes

    def measured_as(self, path: Path) -> dict[str, str]:
        """How its latencies were taken, logged beside them."""
        inputs = "host arrays, copied in and out" if self.gpu else "host arrays"
        return {"mode": self.config.mode, "inputs": inputs}

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        """The fp32 math policy while the program is exported, compiled and run, and only
        then: the stages of the same process keep torch's own (the CPU has one)."""
        yield

    def executable(self, path: Path) -> tuple[Callable[..., torch.Tensor], torch.dtype]:
        """The program in the configured execution mode, on the device, and the dtype its
        float inputs take (benchmarks time it, inside `precision()`, with and without the
        host copies)."""
        module, dtype = load_program(path)
        return EXECUTION_MODES[self.config.mode](module), dtype

    def begin_step(self) -> None:
        """Before each call: a program that replays CUDA graphs may then overwrite the last
        replay's outputs (already copied out by then)."""
        if self.device == "cuda" and self.config.mode in ("cuda_graphs", "max_autotune"):
            torch.compiler.cudagraph_mark_step_begin()

    def load(self, path: Path) -> Predict:
        torch.set_num_threads(self.config.threads)
        run, dtype = self.executable(path)
        device = torch.device(self.device)

        def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
            # Callers feed float32 host arrays; a half-precision program is fed and read as a
            # deployment would. On a GPU the copies in and out are part of what is timed.
            tensors = {
                k: torch.from_numpy(v).to(
                    device=device, dtype=dtype if v.dtype.kind == "f" else None
                )
                for k, v in inputs.items()
            }
            with torch.inference_mode(), self.precision():  # compiled at the first call
                self.begin_step()
                return run(**tensors).float().cpu().numpy()  # .cpu() waits for the GPU

        return predict


@RUNTIMES.register("torch_cuda")
class TorchCudaRuntime(TorchCpuRuntime):
    config_type = TorchCudaConfig
    device = "cuda"
    gpu = True
    handlers = TORCH_CUDA_HANDLERS
    config: TorchCudaConfig

    @staticmethod
    def unavailable() -> str | None:
        if not torch.cuda.is_available():
            return "torch_cuda needs a CUDA GPU; torch.cuda.is_available() is False here"
        return None

    def measured_as(self, path: Path) -> dict[str, str]:
        return {**super().measured_as(path), "tf32": "on" if self.config.tf32 else "off"}

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        # The flags torch.export itself reads (cudnn.flags): the newer fp32_precision API
        # leaves them unreadable once cuDNN is set to IEEE (torch 2.11 to 2.13).
        flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
        before = [flag.allow_tf32 for flag in flags]
        for flag in flags:
            flag.allow_tf32 = self.config.tf32
        try:
            yield
        finally:
            for flag, value in zip(flags, before, strict=True):
                flag.allow_tf32 = value
