"""How ONNX Runtime realises a QuantizationPlan: one realiser per precision, registered."""

import logging
from collections.abc import Callable
from pathlib import Path

import onnx
import torch

from slimsweep.compressors.base import QuantizationPlan
from slimsweep.sweeps.registry import Registry
from slimsweep.sweeps.runtimes.onnx_rewrite import gemm_to_matmul
from slimsweep.sweeps.runtimes.onnx_storage import store_weights_fp16
from slimsweep.sweeps.task import Inputs

Realiser = Callable[[Path, Path, QuantizationPlan, list[Inputs]], None]
ORT_REALISERS: Registry[Realiser] = Registry("ort_cpu precision")


@ORT_REALISERS.register("fp16")
def _fp16_weights(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    # The CPU execution provider has no fp16 kernels on x86: weights ship in fp16 (half the
    # bytes) and are cast to fp32 at load, so compute and latency stay those of fp32.
    model = onnx.load(source)
    store_weights_fp16(model)
    onnx.save(model, target)


@ORT_REALISERS.register("int4_weight")
def _int4_weights(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    # MatMulNBits: weights packed two to a byte, one scale and zero point per group of
    # `group_size` input channels; activations quantized to int8 at run time
    # (accuracy_level 4), MLAS's fastest CPU path. Convolutions stay fp32: ORT has no
    # 4-bit convolution.
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    model = onnx.load(source)
    gemm_to_matmul(model)
    quantizer = MatMulNBitsQuantizer(
        model, bits=4, block_size=plan.group_size, is_symmetric=False, accuracy_level=4
    )
    quantizer.process()
    onnx.save(quantizer.model.model, target)


@ORT_REALISERS.register("int8_dynamic")
def _int8_dynamic(
    source: Path, target: Path, plan: QuantizationPlan, calibration: list[Inputs]
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, per_channel=plan.per_channel, weight_type=QuantType.QInt8)


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
    )
