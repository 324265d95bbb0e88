"""PyTorch, eager or torch.compile, on the CPU or a CUDA GPU: the artifact is a torch.export
program (.pt2), exported once on the CPU and loaded onto the runtime's device."""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimsweep.compressors.base import CompressedModel
from slimsweep.compressors.plans import HalfPlan, QuantizationPlan
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.runtimes.base import RUNTIMES, PlanHandlers
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict

# (float module, example inputs, plan) → the module and inputs to export
TorchHandler = Callable[[torch.nn.Module, Inputs, QuantizationPlan], tuple[torch.nn.Module, Inputs]]
TORCH_HANDLERS: PlanHandlers[TorchHandler] = PlanHandlers(
    "torch runtimes",
    without="PyTorch has no exportable integer kernels here; use runtime=ort_cpu or ort_cuda",
)


@TORCH_HANDLERS.register(HalfPlan)
def _half_program(
    module: torch.nn.Module, example: Inputs, plan: HalfPlan
) -> tuple[torch.nn.Module, Inputs]:
    """A half-precision program: weights, compute, inputs and outputs."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[plan.dtype]
    module = copy.deepcopy(module).to(dtype)  # exporting must not change the model
    return module, {k: v.to(dtype) if v.is_floating_point() else v for k, v in example.items()}


@dataclass
class TorchCpuConfig(RuntimeConfig):
    compile: bool = False  # torch.compile the loaded program (inductor) before measuring

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.compile, bool):
            raise ConfigError(f"runtime.compile={self.compile!r} must be true or false")


@RUNTIMES.register("torch_cpu")
class TorchCpuRuntime:
    config_type = TorchCpuConfig
    artifact_name = "model.pt2"
    device = "cpu"
    handlers = TORCH_HANDLERS

    def __init__(self, config: TorchCpuConfig) -> None:
        self.config = config

    def export(
        self, model: CompressedModel, example: Inputs, calibration: list[Inputs], path: Path
    ) -> None:
        module = model.module.eval()
        if model.quantization is not None:
            realise = self.handlers.get(model.quantization)
            module, example = realise(module, example, model.quantization)
        batch = torch.export.Dim("batch")
        shapes = {name: {0: batch} for name in example}
        program = torch.export.export(module, (), kwargs=example, dynamic_shapes=shapes)
        torch.export.save(program, str(path))

    @staticmethod
    def unavailable() -> str | None:
        return None

    def on_calling_thread(self) -> bool:
        """One intra-op thread on the CPU computes on the caller's thread."""
        return self.device == "cpu" and self.config.threads == 1

    def load(self, path: Path) -> Predict:
        torch.set_num_threads(self.config.threads)
        device = torch.device(self.device)
        module = torch.export.load(str(path)).module().to(device)
        dtype = next(iter(module.parameters()), torch.zeros(())).dtype
        if self.config.compile:
            module = torch.compile(module)

        def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
            # Callers feed float32 host arrays; a half-precision program is fed and read as a
            # deployment would. On a GPU the copies in and out are part of what is timed.
            tensors = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
            with torch.inference_mode():
                return module(**tensors).float().cpu().numpy()  # .cpu() waits for the GPU

        return predict


@RUNTIMES.register("torch_cuda")
class TorchCudaRuntime(TorchCpuRuntime):
    device = "cuda"

    @staticmethod
    def unavailable() -> str | None:
        if not torch.cuda.is_available():
            return "torch_cuda needs a CUDA GPU; torch.cuda.is_available() is False here"
        return None
