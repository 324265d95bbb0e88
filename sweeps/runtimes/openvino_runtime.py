"""OpenVINO on the CPU: the artifact is OpenVINO IR (`model.xml` and its `model.bin`),
converted from the same ONNX export as ORT's, its plans realised by NNCF and by writing the
chosen codes into the IR (`openvino_plans.py`). It runs as it is deployed: a compiled model
with the trial's threads, the latency hint and one stream, at the precision the artifact
asks for (`f32` for a float model, not whatever the CPU would pick by itself).

`shape: static` compiles the task's latency shape into the artifact: OpenVINO then plans
its kernels for that shape alone. A static artifact takes that shape only; its runner feeds
larger batches in pieces and pads shorter sentences (the task's declared axes) with zeros,
as a tokenizer pads, which is how its quality is scored too.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimsweep.compressors.base import CompressedModel
from slimsweep.sweeps.errors import ConfigError, require_choice
from slimsweep.sweeps.runtimes.artifact import register_companions
from slimsweep.sweeps.runtimes.base import RUNTIMES
from slimsweep.sweeps.runtimes.onnx_export import EXPORTERS, float_onnx
from slimsweep.sweeps.runtimes.openvino_plans import (
    OPENVINO_HANDLERS,
    PRECISION_INFO,
    cpu_capabilities,
    openvino_unavailable,
)
from slimsweep.sweeps.runtimes.shapes import DynamicAxes, dynamic_axes
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.task import Inputs, Predict

SHAPES = ("dynamic", "static")
PADDED_INFO = ["slimsweep", "padded_axes"]  # a static IR's declared axes: `name:axis;...`
DEVICE = "CPU"
register_companions(".xml", (".bin",))


@dataclass
class OpenVinoCpuConfig(RuntimeConfig):
    shape: str = "dynamic"  # dynamic | static: the task's latency shape compiled in
    exporter: str = "auto"  # torch → ONNX before OpenVINO converts it (see onnx_export)
    # NNCF post-training INT8 (int8_static): the model type (`transformer` keeps attention's
    # softmax and layer norms float, and SmoothQuant; `auto` picks it for a model with
    # attention), and SmoothQuant's alpha for matmuls (-1: off; NNCF's default 0.95).
    model_type: str = "auto"
    smooth_quant_alpha: float = 0.95
    calibration_size: int = 300  # calibration rows NNCF reads (its subset_size)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("runtime.shape", self.shape, SHAPES)
        require_choice("runtime.exporter", self.exporter, tuple(EXPORTERS))
        require_choice("runtime.model_type", self.model_type, ("auto", "transformer", "default"))
        if not (self.smooth_quant_alpha == -1 or 0 <= self.smooth_quant_alpha <= 1):
            raise ConfigError(
                f"runtime.smooth_quant_alpha={self.smooth_quant_alpha} must be in [0, 1], "
                "or -1 for no SmoothQuant"
            )
        if self.calibration_size < 1:
            raise ConfigError(f"runtime.calibration_size={self.calibration_size} must be ≥ 1")


@RUNTIMES.register("openvino_cpu")
class OpenVinoCpuRuntime:
    config_type = OpenVinoCpuConfig
    artifact_name = "model.xml"
    gpu = False
    handlers = OPENVINO_HANDLERS

    def __init__(self, config: OpenVinoCpuConfig) -> None:
        self.config = config

    @staticmethod
    def unavailable() -> str | None:
        return openvino_unavailable()

    def export(
        self,
        model: CompressedModel,
        example: Inputs,
        calibration: list[Inputs],
        path: Path,
        axes: DynamicAxes | None = None,
    ) -> None:
        import openvino as ov

        axes = axes or dynamic_axes(example)
        with float_onnx(model.module, example, self.config.exporter, calibration, axes) as onnx:
            ov_model = ov.convert_model(str(onnx))
        ov_model.set_rt_info("f32", PRECISION_INFO)
        half = False
        if model.quantization is not None:
            realise = self.handlers.get(model.quantization)
            ov_model, half = realise(ov_model, model.quantization, calibration, self.config)
        if self.config.shape == "static":
            names = [port.get_any_name() for port in ov_model.inputs]
            ov_model.reshape({name: list(example[name].shape) for name in names})
            ov_model.set_rt_info(_recorded_axes(axes), PADDED_INFO)
        ov.save_model(ov_model, str(path), compress_to_fp16=half)

    def measured_as(self, path: Path) -> dict[str, str]:
        """OpenVINO's compile options as the trial used them (a deployment must pass the
        same: the CPU plugin would otherwise pick its own precision, bf16 on some CPUs)."""
        import openvino as ov

        options = compile_options(ov.Core().read_model(str(path)), self.config.threads)
        return {
            "device": DEVICE,
            **{key: str(value) for key, value in options.items()},
            "shape": self.config.shape,
            "inputs": "host arrays",
        }

    def on_calling_thread(self) -> bool:
        """OpenVINO computes on its own thread pool, whatever the thread count."""
        return False

    def load(self, path: Path) -> Predict:
        return CompiledIR(path, self.config.threads)

    def artifact_axes(self, axes: DynamicAxes) -> DynamicAxes:
        """A static artifact takes the latency shape alone: no axis stays dynamic."""
        return {} if self.config.shape == "static" else axes


class CompiledIR:
    """The IR at `path` compiled as a deployment compiles it (the precision the IR asks for,
    `threads` threads or OpenVINO's choice for 0, the latency hint, one stream), called with
    named arrays. A static artifact takes any batch (run in pieces of its own) and, on the
    axes the task declared dynamic, anything up to its length (padded with zeros, as a
    tokenizer pads); any other shape is refused."""

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        ov_model = core.read_model(str(path))
        self.options = compile_options(ov_model, threads)
        self.compiled = core.compile_model(ov_model, DEVICE, self.options)
        self._request = self.compiled.create_infer_request()
        self._shapes = static_shapes(self.compiled)
        self._padded_axes = padded_axes(ov_model)

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self._request.infer(inputs)
        return self._request.get_output_tensor(0).data.copy()

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self._shapes is None:
            return self._run(inputs)
        shaped = {
            name: _padded(inputs[name], shape, self._padded_axes.get(name, ()))
            for name, shape in self._shapes.items()
        }
        return in_pieces(self._run, shaped, next(iter(self._shapes.values()))[0])


def compile_options(ov_model: Any, threads: int) -> dict[str, Any]:
    """How every slimsweep OpenVINO artifact is compiled (its model card says the same): the
    inference precision the IR asks for, resolved on this machine (f16 where this CPU
    lacks it is inferred in f32 from the fp16 weights)."""
    precision = ov_model.get_rt_info(PRECISION_INFO).astype(str)
    if precision == "f16" and "FP16" not in cpu_capabilities():
        precision = "f32"
    return {
        **({"INFERENCE_NUM_THREADS": threads} if threads else {}),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": precision,
    }


def static_shapes(compiled: Any) -> dict[str, tuple[int, ...]] | None:
    """Each input's one shape, when the artifact was compiled for one (None: dynamic)."""
    inputs = {port.get_any_name(): port.get_partial_shape() for port in compiled.inputs}
    if not all(shape.is_static for shape in inputs.values()):
        return None
    return {name: tuple(shape.to_shape()) for name, shape in inputs.items()}


def padded_axes(ov_model: Any) -> dict[str, tuple[int, ...]]:
    """The axes besides the batch that the task declared dynamic, as a static IR records
    them: there a shorter input is padded."""
    if not ov_model.has_rt_info(PADDED_INFO):
        return {}
    recorded = ov_model.get_rt_info(PADDED_INFO).astype(str)
    axes: dict[str, tuple[int, ...]] = {}
    for entry in filter(None, recorded.split(";")):
        name, axis = entry.rsplit(":", 1)
        axes[name] = (*axes.get(name, ()), int(axis))
    return axes


def _recorded_axes(axes: DynamicAxes) -> str:
    return ";".join(f"{name}:{axis}" for name, named in axes.items() for axis in named if axis)


def in_pieces(run: Any, inputs: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """`run` over inputs of any number of rows, in pieces of the static `batch` (the last
    one filled with copies of its first row, whose outputs are dropped)."""
    rows = next(iter(inputs.values())).shape[0]
    outputs = []
    for start in range(0, rows, batch):
        piece = {name: array[start : start + batch] for name, array in inputs.items()}
        short = batch - next(iter(piece.values())).shape[0]
        if short:
            piece = {
                name: np.concatenate([array, np.repeat(array[:1], short, axis=0)])
                for name, array in piece.items()
            }
        outputs.append(run(piece)[: batch - short])
    return np.concatenate(outputs)


def _padded(array: np.ndarray, shape: tuple[int, ...], padded: tuple[int, ...]) -> np.ndarray:
    """`array` at the static shape on every axis but the batch: zeros after the end of
    the `padded` axes; any other difference is refused, naming the axis."""
    if array.ndim != len(shape) or array.shape[0] == 0:
        raise ValueError(f"an input of shape {array.shape}; the artifact takes {shape}")
    widths = [(0, 0)]
    for axis in range(1, array.ndim):
        short = shape[axis] - array.shape[axis]
        if short < 0 or (short and axis not in padded):
            raise ValueError(
                f"an input of shape {array.shape} does not fit the static artifact's {shape} "
                f"on axis {axis}; export with runtime.shape=dynamic to take it"
            )
        widths.append((0, short))
    return np.pad(array, widths) if any(w for _, w in widths) else array
