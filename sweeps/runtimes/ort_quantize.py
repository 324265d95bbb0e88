"""How ONNX Runtime realises a QuantizationPlan: one realiser per precision, registered."""

from collections.abc import Callable
from pathlib import Path

import onnx
import torch

from slimsweep.compressors.base import QuantizationPlan
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.runtimes.onnx_nbits import quantize_matmuls
from slimsweep.sweeps.runtimes.onnx_storage import store_weights_half
from slimsweep.sweeps.task import Inputs

Realiser = Callable[[Path, Path, QuantizationPlan, list[Inputs]], None]
ORT_REALISERS: Registry[Realiser] = Registry("ort_cpu precision")


@ORT_REALISERS.register("fp16")
@ORT_REALISERS.register("bf16")
def _half_weights(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    # The CPU execution provider has no fp16/bf16 kernels on x86: weights ship in half
    # precision (half the bytes) and are cast to fp32 at load, so compute and latency stay
    # those of fp32.
    model = onnx.load(source)
    store_weights_half(model, plan.precision)
    onnx.save(model, target)


@ORT_REALISERS.register("int4_weight")
def _int4_weights(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    # MatMulNBits on every constant matmul; convolutions stay fp32: ORT has no 4-bit
    # convolution.
    model = onnx.load(source)
    quantize_matmuls(model, plan)
    onnx.save(model, target)


@ORT_REALISERS.register("int8_dynamic")
def _int8_dynamic(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        per_channel=plan.per_channel,
        weight_type=QuantType.QInt8,
        extra_options={"WeightSymmetric": plan.symmetric},
    )


@ORT_REALISERS.register("int8_static")
def _int8_static(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
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
            "int8_static needs calibration data; the task's calibration split is empty"
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
