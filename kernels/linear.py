"""Linear layers that hold packed low-bit weights and call a packed matmul, so an exported
program keeps the packed bytes and runs the packed kernel.

- `QuantLinear4` / `QuantLinear8`: the shared layout (`kernels/packing.py`) through the
  `slimsweep::` custom ops: Triton on CUDA, the plain-torch reference elsewhere.
- `CpuQuantLinear4` / `CpuQuantLinear8`: torch's own CPU weight-only kernels
  (`aten._weight_int4pack_mm_for_cpu`, `aten._weight_int8pack_mm`) and their layouts,
  converted from the same codes.
"""

from collections.abc import Callable

import torch
from torch.nn import functional

import slimsweep.kernels.ops  # noqa: F401  (registers torch.ops.slimsweep.*)
from slimsweep.kernels.packing import PackedInt4, PackedInt8

CPU_INT4_GROUP_SIZES = (32, 64, 128, 256)  # what aten's CPU int4 kernel accepts
# aten's CPU weight-only kernels are vectorised for bf16 activations only; float32 and fp16
# take a scalar path: 4096², one row, 24.7 ms in float32 against 0.42 ms in bf16 (fp32
# dense: 2.7 ms) on an AMD EPYC (Zen 5), one thread. So the packed linears compute in bf16
# and hand back the program's dtype.
CPU_KERNEL_DTYPE = torch.bfloat16
_CPU_INT4_ROWS = 16  # aten's CPU int4 packing wants N in multiples of 16
_CPU_INT4_TILES = 2  # inner k tiles of aten's CPU int4 packing


class _PackedLinear(torch.nn.Module):
    """The bias and sizes every packed linear keeps from the float layer it replaces."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = linear.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone())

    def _biased(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class QuantLinear4(_PackedLinear):
    def __init__(self, linear: torch.nn.Linear, packed: PackedInt4) -> None:
        super().__init__(linear)
        self.group_size = packed.group_size
        self.register_buffer("qweight", packed.qweight.contiguous())
        self.register_buffer("scales", packed.scales.contiguous())
        self.register_buffer("zeros", packed.zeros.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.slimsweep.int4_weight_mm(
            x, self.qweight, self.scales, self.zeros, self.group_size
        )
        return self._biased(y)


class QuantLinear8(_PackedLinear):
    def __init__(self, linear: torch.nn.Linear, packed: PackedInt8) -> None:
        super().__init__(linear)
        self.register_buffer("qweight", packed.qweight.contiguous())
        self.register_buffer("scales", packed.scales.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._biased(torch.ops.slimsweep.int8_weight_mm(x, self.qweight, self.scales))


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # aten's CPU weight-only kernels take 2-D inputs


class CpuQuantLinear4(_PackedLinear):
    """torch's CPU int4 layout keeps tinygemm's grid, w = (code - 8) * scale + offset, so
    each group's offset is (8 - zero) * scale: the same weights as the stage's codes.
    Activations meet the weights in bf16, the only dtype with a vectorised CPU path (see
    CPU_KERNEL_DTYPE)."""

    def __init__(self, linear: torch.nn.Linear, packed: PackedInt4) -> None:
        super().__init__(linear)
        if packed.group_size not in CPU_INT4_GROUP_SIZES:
            raise ValueError(f"torch's CPU int4 kernel takes groups of {CPU_INT4_GROUP_SIZES}")
        self.group_size = packed.group_size
        rows = -packed.qweight.shape[0] % _CPU_INT4_ROWS
        codes = functional.pad(packed.codes().to(torch.int32), (0, 0, 0, rows))
        zeros = functional.pad(packed.zero_points().float(), (0, 0, 0, rows))
        scales = functional.pad(packed.scales.float(), (0, 0, 0, rows))
        offsets = (8 - zeros) * scales
        self.register_buffer(
            "qweight", torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, _CPU_INT4_TILES)
        )
        # [groups, N, 2]: each group's scale and offset, as the kernel reads them
        grid = torch.stack([scales.t(), offsets.t()], dim=-1).to(CPU_KERNEL_DTYPE)
        self.register_buffer("scales_and_offsets", grid.contiguous())
        self.padded_in_features = codes.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = functional.pad(x, (0, self.padded_in_features - self.in_features))
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            _rows(padded).to(CPU_KERNEL_DTYPE),
            self.qweight,
            self.group_size,
            self.scales_and_offsets,
        )
        y = y[:, : self.out_features].reshape(*x.shape[:-1], self.out_features)
        return self._biased(y.to(x.dtype))


class CpuQuantLinear8(_PackedLinear):
    def __init__(self, linear: torch.nn.Linear, packed: PackedInt8) -> None:
        super().__init__(linear)
        self.register_buffer("qweight", packed.qweight.contiguous())
        self.register_buffer("scales", packed.scales.to(CPU_KERNEL_DTYPE).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _rows(x).to(CPU_KERNEL_DTYPE)
        y = torch.ops.aten._weight_int8pack_mm(rows, self.qweight, self.scales)
        return self._biased(y.reshape(*x.shape[:-1], self.out_features).to(x.dtype))


def replace_linears(
    module: torch.nn.Module, packed_layer: Callable[[str, torch.nn.Linear], torch.nn.Module]
) -> int:
    """Swap every nn.Linear of `module` in place for `packed_layer(name, linear)`; returns
    how many."""
    if isinstance(module, torch.nn.Linear):
        raise ValueError("the model is one bare nn.Linear: wrap it in a module to pack it")
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    for name, linear in linears:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        # where the float layer was: a program asserts the device of its constants
        setattr(parent, child, packed_layer(name, linear).to(linear.weight.device))
    return len(linears)
