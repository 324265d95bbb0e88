"""ONNX Runtime on the CPU or CUDA execution provider: the artifact is one .onnx file."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from slimsweep.compressors.base import CompressedModel
from slimsweep.sweeps.errors import require_choice
from slimsweep.sweeps.runtimes.base import RUNTIMES
from slimsweep.sweeps.runtimes.onnx_export import EXPORTERS, OUTPUT_NAME, float_onnx
from slimsweep.sweeps.runtimes.onnx_storage import store_compact
from slimsweep.sweeps.runtimes.ort_quantize import ORT_HANDLERS
from slimsweep.sweeps.runtimes.shapes import DynamicAxes, dynamic_axes
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict


@dataclass
class OrtCpuConfig(RuntimeConfig):
    compact_weights: bool = True
    exporter: str = "auto"  # torch → ONNX: auto | torchscript | dynamo (see onnx_export)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("runtime.exporter", self.exporter, tuple(EXPORTERS))


@RUNTIMES.register("ort_cpu")
class OrtCpuRuntime:
    config_type = OrtCpuConfig
    artifact_name = "model.onnx"
    provider = "CPUExecutionProvider"
    gpu = False
    handlers = ORT_HANDLERS

    def __init__(self, config: OrtCpuConfig) -> None:
        self.config = config

    @classmethod
    def unavailable(cls) -> str | None:
        import onnxruntime as ort

        offered = ort.get_available_providers()
        if cls.provider not in offered:
            return (
                f"{cls.provider} is not in this onnxruntime (it offers {', '.join(offered)}); "
                "a GPU and the onnxruntime-gpu package are needed"
            )
        return None

    def export(
        self,
        model: CompressedModel,
        example: Inputs,
        calibration: list[Inputs],
        path: Path,
        axes: DynamicAxes | None = None,
    ) -> None:
        axes = axes or dynamic_axes(example)
        exported = float_onnx(model.module, example, self.config.exporter, calibration, axes)
        with exported as float_path:
            if model.quantization is None:
                shutil.copyfile(float_path, path)
            else:
                realise = self.handlers.get(model.quantization)
                realise(float_path, path, model.quantization, calibration)
        if self.config.compact_weights:
            proto = onnx.load(path)
            if any(store_compact(proto).values()):
                onnx.save(proto, path)

    def artifact_axes(self, axes: DynamicAxes) -> DynamicAxes:
        return axes

    def measured_as(self, path: Path) -> dict[str, str]:
        return {"provider": self.provider, "inputs": "host arrays"}

    def on_calling_thread(self) -> bool:
        """One intra-op thread of the CPU provider computes on the caller's thread."""
        return self.provider == "CPUExecutionProvider" and self.config.threads == 1

    def load(self, path: Path) -> Predict:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(path), options, providers=[self.provider])

        def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
            return session.run([OUTPUT_NAME], inputs)[0]

        return predict


@RUNTIMES.register("ort_cuda")
class OrtCudaRuntime(OrtCpuRuntime):
    provider = "CUDAExecutionProvider"
    gpu = True
