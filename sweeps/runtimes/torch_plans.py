"""How the torch runtimes realise each quantization plan before torch.export.

torch_cpu runs weight-only plans on torch's own CPU int4/int8 kernels, with float32
activations. torch_cuda runs them on slimsweep's Triton kernels (`kernels/`) with fp16
activations, the form weight-only kernels are built for. Both keep the packed bytes in the
exported program, so the artifact's size is the compressed size.
"""

from collections.abc import Callable
from typing import Any

import torch

from slimsweep.compressors.grouped import codes_for
from slimsweep.compressors.plans import (
    HalfPlan,
    Int8WeightOnlyPlan,
    QuantizationPlan,
    WeightOnlyPlan,
)
from slimsweep.kernels.linear import (
    CPU_INT4_GROUP_SIZES,
    CpuQuantLinear4,
    CpuQuantLinear8,
    QuantLinear4,
    QuantLinear8,
    replace_linears,
)
from slimsweep.kernels.packing import pack_int4, quantize_int8_per_channel
from slimsweep.sweeps.runtimes.base import PlanHandlers
from slimsweep.sweeps.task import Inputs

# (float module, example inputs, plan) → the module and inputs to export
TorchHandler = Callable[[torch.nn.Module, Inputs, QuantizationPlan], tuple[torch.nn.Module, Inputs]]
_NO_INT8_ACTIVATIONS = "PyTorch has no exportable int8-activation kernels here; use runtime=ort_cpu"
TORCH_CPU_HANDLERS: PlanHandlers[TorchHandler] = PlanHandlers(
    "torch_cpu", without=_NO_INT8_ACTIVATIONS
)
TORCH_CUDA_HANDLERS: PlanHandlers[TorchHandler] = PlanHandlers(
    "torch_cuda", without=_NO_INT8_ACTIVATIONS.replace("ort_cpu", "ort_cuda")
)


def half_program(
    module: torch.nn.Module, example: Inputs, plan: HalfPlan
) -> tuple[torch.nn.Module, Inputs]:
    """A half-precision program: weights, compute, inputs and outputs."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[plan.dtype]
    module = module.to(dtype)
    return module, {k: v.to(dtype) if v.is_floating_point() else v for k, v in example.items()}


for _handlers in (TORCH_CPU_HANDLERS, TORCH_CUDA_HANDLERS):
    _handlers.register(HalfPlan)(half_program)


def _embeddings_stay_float(plan: WeightOnlyPlan) -> str | None:
    if plan.embeddings:
        return "the torch runtimes keep embedding tables float (embeddings=false, or ort_cpu)"
    return None


def _cpu_int4_limits(plan: WeightOnlyPlan) -> str | None:
    if plan.group_size not in CPU_INT4_GROUP_SIZES:
        return f"torch's CPU int4 kernel takes group_size in {CPU_INT4_GROUP_SIZES}"
    return _embeddings_stay_float(plan)


# (linear's name, the linear, the plan) → the packed layer that replaces it
PackedLayer = Callable[[str, torch.nn.Linear, Any], torch.nn.Module]


def _int4(layer_type: type) -> PackedLayer:
    """Each linear's codes (the stage's, or rounded to nearest) in the shared layout."""
    return lambda name, linear, plan: layer_type(
        linear, pack_int4(codes_for(plan, linear.weight, f"nn.Linear {name!r}"), linear.in_features)
    )


def _int8(layer_type: type) -> PackedLayer:
    return lambda name, linear, plan: layer_type(linear, quantize_int8_per_channel(linear.weight))


def _packing(layer: PackedLayer, fp16_activations: bool) -> TorchHandler:
    """A handler that swaps every nn.Linear for its packed layer, then feeds the program
    fp16 where the kernels want it."""

    def realise(
        module: torch.nn.Module, example: Inputs, plan: QuantizationPlan
    ) -> tuple[torch.nn.Module, Inputs]:
        replace_linears(module, lambda name, linear: layer(name, linear, plan))
        return (
            half_program(module, example, HalfPlan("fp16"))
            if fp16_activations
            else (module, example)
        )

    return realise


TORCH_CPU_HANDLERS.register(WeightOnlyPlan, _cpu_int4_limits)(
    _packing(_int4(CpuQuantLinear4), False)
)
TORCH_CPU_HANDLERS.register(Int8WeightOnlyPlan)(_packing(_int8(CpuQuantLinear8), False))
TORCH_CUDA_HANDLERS.register(WeightOnlyPlan, _embeddings_stay_float)(
    _packing(_int4(QuantLinear4), True)
)
TORCH_CUDA_HANDLERS.register(Int8WeightOnlyPlan)(_packing(_int8(QuantLinear8), True))
