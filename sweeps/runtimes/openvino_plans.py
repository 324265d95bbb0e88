"""How OpenVINO realises each quantization plan, on the model converted from ONNX.

- `HalfPlan`: weights stored in fp16, and the artifact asks the CPU plugin to infer in
  bf16 (refused where the CPU lacks it) or fp16 (where the CPU has it; else f32).
- `Int8Plan` (static): NNCF's post-training quantization on the task's calibration split,
  with SmoothQuant and fast bias correction for transformers. OpenVINO has no dynamic INT8
  of float weights, so `int8_dynamic` is refused.
- `WeightOnlyPlan` and `Int8WeightOnlyPlan`: the codes written into the IR as the
  decompression subgraph the CPU plugin runs packed (u4/i8 constant → convert → subtract the
  zero point → multiply by the scale → matmul). Codes a stage chose (GPTQ, AWQ, QAT) are
  written bit for bit, anything else is rounded to nearest by the same function as on every
  other runtime; scales stay float32, so no weight is rounded twice.
"""

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from slimsweep.compressors.grouped import codes_for, round_to_nearest, warn_if_padded
from slimsweep.compressors.plans import (
    GroupQuantized,
    HalfPlan,
    Int8Plan,
    Int8WeightOnlyPlan,
    QuantizationPlan,
    WeightOnlyPlan,
)
from slimsweep.kernels.packing import quantize_int8_per_channel
from slimsweep.sweeps.runtimes.base import PlanHandlers
from slimsweep.sweeps.task import Inputs

PRECISION_INFO = ["slimsweep", "inference_precision"]  # what the IR asks the CPU to infer in
# (converted model, plan, calibration batches, runtime config) → (model, store weights fp16)
OpenVinoHandler = Callable[[Any, QuantizationPlan, list[Inputs], Any], tuple[Any, bool]]
OPENVINO_HANDLERS: PlanHandlers[OpenVinoHandler] = PlanHandlers("openvino_cpu")
_INFERENCE_TYPES = {"bf16": "bf16", "fp16": "f16"}  # the plan's dtype → OpenVINO's hint


@functools.cache
def openvino_unavailable() -> str | None:
    """Why OpenVINO cannot run here, or None."""
    try:
        import openvino as ov
    except ImportError as error:
        return f"the openvino package does not import ({error}); pip install 'slimsweep[openvino]'"
    if "CPU" not in ov.Core().available_devices:
        return f"OpenVINO sees no CPU device here (it sees {ov.Core().available_devices})"
    return None


@functools.cache
def cpu_capabilities() -> tuple[str, ...]:
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _half_limits(plan: HalfPlan) -> str | None:
    if plan.dtype != "bf16" or openvino_unavailable() or "BF16" in cpu_capabilities():
        return None
    return (
        f"this CPU cannot infer in bf16 (OpenVINO's CPU capabilities: "
        f"{', '.join(cpu_capabilities())}); choose fp16 (fp16 weights), or another precision"
    )


@OPENVINO_HANDLERS.register(HalfPlan, _half_limits)
def _half(model: Any, plan: HalfPlan, calibration: list[Inputs], config: Any) -> tuple[Any, bool]:
    """Weights stored in fp16, inference asked in the plan's type (resolved where the IR is
    compiled: fp16 on a CPU without it computes in f32 from the fp16 weights, as ONNX
    Runtime does)."""
    model.set_rt_info(_INFERENCE_TYPES[plan.dtype], PRECISION_INFO)
    return model, True


def _int8_limits(plan: Int8Plan) -> str | None:
    if plan.dynamic:
        return (
            "OpenVINO has no dynamic INT8 of float weights (its dynamic quantization applies "
            "to compressed weights): use precision=int8_static (NNCF) or int8_weight"
        )
    if plan.calibration == "entropy":
        return "NNCF has no entropy calibration: use calibration=minmax or percentile"
    return None


@OPENVINO_HANDLERS.register(Int8Plan, _int8_limits)
def _int8_static(
    model: Any, plan: Int8Plan, calibration: list[Inputs], config: Any
) -> tuple[Any, bool]:
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    rows = [
        {name: tensor[i : i + 1].numpy() for name, tensor in batch.items()}
        for batch in calibration
        for i in range(len(next(iter(batch.values()))))
    ]
    if not rows:
        raise ValueError(
            "static INT8 needs calibration data; the task's calibration split is empty"
        )
    transformer = config.model_type == "transformer" or (
        config.model_type == "auto" and _has_attention(model)
    )
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=config.smooth_quant_alpha),
        weights_quantization_params=None
        if plan.per_channel
        else QuantizationParameters(per_channel=False),
        activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_QUANTILE
        if plan.calibration == "percentile"
        else None,
    )
    quantized = nncf.quantize(
        model,
        nncf.Dataset(rows),
        preset=nncf.QuantizationPreset.PERFORMANCE
        if plan.symmetric
        else nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
        subset_size=min(config.calibration_size, len(rows)),
        advanced_parameters=advanced,
    )
    return quantized, False


def _has_attention(model: Any) -> bool:
    attention = ("Softmax", "ScaledDotProductAttention")
    return any(op.get_type_name() in attention for op in model.get_ops())


@OPENVINO_HANDLERS.register(WeightOnlyPlan)
def _weight_only(
    model: Any, plan: WeightOnlyPlan, calibration: list[Inputs], config: Any
) -> tuple[Any, bool]:
    for op, weight in _constant_matmuls(model):
        warn_if_padded(weight.shape[1], plan.group_size)
        codes = codes_for(plan, weight, f"MatMul {op.get_friendly_name()!r}")
        _replace_matmul(op, _grouped_weight(codes, weight.shape))
    if plan.embeddings:
        for op, table in _constant_gathers(model, plan.group_size):
            rounded = round_to_nearest(table, plan.bits, plan.group_size, plan.symmetric)
            op.input(0).replace_source_output(_grouped_weight(rounded, table.shape).output(0))
    model.validate_nodes_and_infer_types()
    return model, False


@OPENVINO_HANDLERS.register(Int8WeightOnlyPlan)
def _int8_weight_only(
    model: Any, plan: Int8WeightOnlyPlan, calibration: list[Inputs], config: Any
) -> tuple[Any, bool]:
    import openvino as ov
    import openvino.opset13 as ops

    for op, weight in _constant_matmuls(model):
        packed = quantize_int8_per_channel(weight)
        codes = ops.constant(packed.qweight.numpy(), dtype=ov.Type.i8)
        scales = ops.constant(packed.scales.numpy()[:, None].astype(np.float32))
        _replace_matmul(op, ops.multiply(ops.convert(codes, ov.Type.f32), scales))
    model.validate_nodes_and_infer_types()
    return model, False


def _constant_matmuls(model: Any) -> list[tuple[Any, torch.Tensor]]:
    """Each MatMul whose second input is a constant 2-D float matrix, with that weight as
    [out, in] (the layout the codes are keyed by)."""
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        source = op.input(1).get_source_output().get_node()
        if source.get_type_name() != "Constant" or len(source.get_output_shape(0)) != 2:
            continue
        data = source.get_data()
        if data.dtype != np.float32:
            continue
        transposed = bool(op.get_attributes()["transpose_b"])
        found.append((op, torch.from_numpy((data if transposed else data.T).copy())))
    return found


def _constant_gathers(model: Any, group_size: int) -> list[tuple[Any, torch.Tensor]]:
    """Each Gather of rows (axis 0) from a constant float table whose width fills whole
    groups: the embedding tables."""
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Gather":
            continue
        table, axis = (op.input(i).get_source_output().get_node() for i in (0, 2))
        if table.get_type_name() != "Constant" or axis.get_type_name() != "Constant":
            continue
        data = table.get_data()
        rows_of_groups = data.ndim == 2 and data.shape[1] % group_size == 0
        if rows_of_groups and data.dtype == np.float32 and int(axis.get_data()) == 0:
            found.append((op, torch.from_numpy(data.copy())))
    return found


def _grouped_weight(codes: GroupQuantized, shape: torch.Size) -> Any:
    """The float matrix [out, in] as OpenVINO's CPU plugin decompresses it inside its
    packed kernels: 4-bit codes and zero points, float32 scales, one per group."""
    import openvino as ov
    import openvino.opset13 as ops

    out, width = shape
    groups = codes.scales.shape[1]
    padded = groups * codes.group_size
    packed = ops.constant(
        codes.codes.numpy().reshape(out, groups, codes.group_size), dtype=ov.Type.u4
    )
    zeros = ops.constant(codes.zeros.numpy().reshape(out, groups, 1), dtype=ov.Type.u4)
    scales = ops.constant(codes.scales.float().numpy().reshape(out, groups, 1))
    centred = ops.subtract(ops.convert(packed, ov.Type.f32), ops.convert(zeros, ov.Type.f32))
    grouped = ops.reshape(
        ops.multiply(centred, scales), ops.constant(np.array([out, padded])), special_zero=False
    )
    if padded == width:
        return grouped
    return ops.slice(
        grouped,
        ops.constant(np.array([0])),
        ops.constant(np.array([width])),
        ops.constant(np.array([1])),
        ops.constant(np.array([1])),
    )


def _replace_matmul(op: Any, weight: Any) -> None:
    """The MatMul again, with `weight` [out, in] as its transposed second input."""
    import openvino.opset13 as ops

    transpose_a = bool(op.get_attributes()["transpose_a"])
    replacement = ops.matmul(op.input_value(0), weight, transpose_a, True)
    replacement.set_friendly_name(op.get_friendly_name())
    op.output(0).replace(replacement.output(0))
