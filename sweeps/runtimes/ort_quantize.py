"""How ONNX Runtime realises each plan type: one handler per type, registered."""

from collections.abc import Callable
from pathlib import Path

import onnx
import torch

from slimsweep.compressors.plans import HalfPlan, Int8Plan, QuantizationPlan, WeightOnlyPlan
from slimsweep.sweeps.runtimes.base import PlanHandlers
from slimsweep.sweeps.runtimes.onnx_nbits import quantize_matmuls
from slimsweep.sweeps.runtimes.onnx_storage import store_weights_half
from slimsweep.sweeps.task import Inputs

# (float model file, target file, plan, calibration batches)
OrtHandler = Callable[[Path, Path, QuantizationPlan, list[Inputs]], None]
ORT_HANDLERS: PlanHandlers[OrtHandler] = PlanHandlers(
    "ort runtimes",
    without="ONNX Runtime has no per-channel int8 weight-only matmul: use int8_dynamic, or "
    "int4_weight, or runtime=torch_cpu",
)


@ORT_HANDLERS.register(HalfPlan)
def _half_weights(source: Path, target: Path, plan: HalfPlan, calibration: list[Inputs]) -> None:
    # The CPU execution provider has no fp16/bf16 kernels on x86: weights ship in half
    # precision (half the bytes) and are cast to fp32 at load, so compute and latency stay
    # those of fp32.
    model = onnx.load(source)
    store_weights_half(model, plan.dtype)
    onnx.save(model, target)


@ORT_HANDLERS.register(WeightOnlyPlan)
def _low_bit_weights(
    source: Path, target: Path, plan: WeightOnlyPlan, calibration: list[Inputs]
) -> None:
    # MatMulNBits on every constant matmul; convolutions stay fp32: ORT has no 4-bit
    # convolution.
    model = onnx.load(source)
    quantize_matmuls(model, plan)
    onnx.save(model, target)


@ORT_HANDLERS.register(Int8Plan)
def _int8(source: Path, target: Path, plan: Int8Plan, calibration: list[Inputs]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if plan.dynamic:
        quantize_dynamic(
            source,
            target,
            per_channel=plan.per_channel,
            weight_type=QuantType.QInt8,
            extra_options={"WeightSymmetric": plan.symmetric},
        )
    else:
        _int8_static(source, target, plan, calibration)


def _int8_static(source: Path, target: Path, plan: Int8Plan, calibration: list[Inputs]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }

    class Reader(CalibrationDataReader):
        # One stacked batch: ORT's histogram calibrators (entropy, percentile) reject
        # batches of unequal size, and a split's last batch is usually shorter.
        def __init__(self) -> None:
            stacked = {k: torch.cat([b[k] for b in calibration]).numpy() for k in calibration[0]}
            self._batches = iter([stacked])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    if not calibration:
        raise ValueError(
            "static INT8 needs calibration data; the task's calibration split is empty"
        )
    quantize_static(
        source,
        target,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=plan.per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[plan.calibration],
        extra_options={"ActivationSymmetric": plan.symmetric, "WeightSymmetric": plan.symmetric},
    )
