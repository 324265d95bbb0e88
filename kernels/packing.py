"""The one packed layout of low-bit weights, shared by every runtime that runs them.

INT4 (grouped, asymmetric or symmetric), for a linear weight W [N out, K in]:
- `qweight` uint8 [N, Kp/2]: the codes of row n, with K padded to Kp, a whole number of
  groups, two codes to a byte, code 2j in the low nibble and code 2j+1 in the high one;
- `scales` [N, Kp/G] float: one per output row and group of G input channels;
- `zeros` uint8 [N, ⌈(Kp/G)/2⌉]: each group's zero point (the code that stands for 0.0),
  packed two to a byte in the same order.

    W[n, k] = (code[n, k] - zero[n, k // G]) * scale[n, k // G]

These are exactly the bytes of ONNX Runtime's MatMulNBits (B is `qweight` viewed as
[N, Kp/G, G/2], zero points are `zeros` flattened), so the codes a stage chose (GPTQ, AWQ,
QAT, or rounding to nearest) are packed once and the ONNX graph and the Triton kernels read
the same bytes. Only the scales' float type follows the runtime's activations.

INT8 (per output channel, symmetric), for the same W: `qweight` int8 [N, K] and `scales`
[N] float, W[n, k] = qweight[n, k] * scale[n].
"""

from dataclasses import dataclass

import numpy as np
import torch

from slimsweep.compressors.plans import GroupQuantized


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """Rows of 4-bit codes [rows, 2n] → bytes [rows, n], the first code in the low nibble."""
    codes = codes.astype(np.uint8)
    if codes.shape[1] % 2:
        codes = np.pad(codes, ((0, 0), (0, 1)))
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_nibbles(packed: np.ndarray, count: int) -> np.ndarray:
    """The inverse of `pack_nibbles`, keeping the first `count` codes of each row."""
    both = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(packed.shape[0], -1)
    return both[:, :count]


@dataclass(frozen=True)
class PackedInt4:
    """A grouped 4-bit weight in the shared layout (see the module docstring)."""

    qweight: torch.Tensor  # uint8 [N, Kp/2]
    scales: torch.Tensor  # float [N, Kp/G]
    zeros: torch.Tensor  # uint8 [N, ⌈(Kp/G)/2⌉]
    group_size: int
    in_features: int  # K before padding to whole groups

    @property
    def groups(self) -> int:
        return self.scales.shape[1]

    def codes(self) -> torch.Tensor:
        """uint8 [N, Kp]: the codes, unpacked."""
        packed = self.qweight.cpu().numpy()
        return torch.from_numpy(unpack_nibbles(packed, 2 * packed.shape[1]))

    def zero_points(self) -> torch.Tensor:
        """uint8 [N, Kp/G]: the zero points, unpacked."""
        return torch.from_numpy(unpack_nibbles(self.zeros.cpu().numpy(), self.groups))


def pack_int4(rounded: GroupQuantized, in_features: int) -> PackedInt4:
    """The stage's codes in the shared layout, bit for bit (scales stay float32)."""
    if int(rounded.codes.max()) > 15 or int(rounded.zeros.max()) > 15:
        raise ValueError("codes above 15 do not fit the 4-bit container")
    return PackedInt4(
        torch.from_numpy(pack_nibbles(rounded.codes.cpu().numpy())),
        rounded.scales.float().cpu().contiguous(),
        torch.from_numpy(pack_nibbles(rounded.zeros.cpu().numpy())),
        rounded.group_size,
        in_features,
    )


@dataclass(frozen=True)
class PackedInt8:
    """A per-output-channel symmetric 8-bit weight (see the module docstring)."""

    qweight: torch.Tensor  # int8 [N, K]
    scales: torch.Tensor  # float [N]


def quantize_int8_per_channel(weight: torch.Tensor) -> PackedInt8:
    """Round each output row of a float weight [N, K] to 255 symmetric levels."""
    weight = weight.detach().float()
    scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
    codes = torch.clamp(torch.round(weight / scales[:, None]), -127, 127).to(torch.int8)
    return PackedInt8(codes.contiguous(), scales)
