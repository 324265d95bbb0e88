"""The packed matmuls as torch custom ops (`torch.ops.slimsweep.*`), so that a model using
them exports to a `.pt2` program that keeps the packed weights, and runs the Triton kernels
on a CUDA device and the plain-torch references anywhere else.

A process that loads such a program must import this module first: torch.export stores the
op by name and looks it up at load time.
"""

from collections.abc import Callable

import torch

from slimsweep.kernels.reference import int4_matmul_reference, int8_matmul_reference

# x [..., K] @ dequant(W)ᵀ → [..., N], W in the shared layouts of `kernels/packing.py`; the
# schemas come from the references' signatures.
int4_weight_mm = torch.library.custom_op(
    "slimsweep::int4_weight_mm", int4_matmul_reference, mutates_args=()
)
int8_weight_mm = torch.library.custom_op(
    "slimsweep::int8_weight_mm", int8_matmul_reference, mutates_args=()
)


def _triton(launcher: str) -> Callable[..., torch.Tensor]:
    """A `kernels.triton_mm` launcher, imported at the first CUDA call: Triton only where
    it runs."""

    def launch(*args: object) -> torch.Tensor:
        from slimsweep.kernels import triton_mm

        return getattr(triton_mm, launcher)(*args)

    return launch


def _rows_by_out_features(x: torch.Tensor, qweight: torch.Tensor, *_: object) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], qweight.shape[0]))


for _op, _launcher in ((int4_weight_mm, "int4_matmul"), (int8_weight_mm, "int8_matmul")):
    _op.register_kernel("cuda")(_triton(_launcher))
    _op.register_fake(_rows_by_out_features)
