"""Plain-torch references for the packed matmuls: unpack, dequantize, matmul. They define
what each kernel computes, run on any device, and are the CPU side of the custom ops."""

import torch


def dequantize_int4(
    qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group_size: int, k: int
) -> torch.Tensor:
    """float32 [N, k] from the shared INT4 layout (`kernels/packing.py`)."""
    codes = torch.stack([qweight & 0x0F, qweight >> 4], dim=-1).reshape(qweight.shape[0], -1)
    groups = scales.shape[1]
    points = torch.stack([zeros & 0x0F, zeros >> 4], dim=-1).reshape(zeros.shape[0], -1)
    points = points[:, :groups].repeat_interleave(group_size, dim=1)
    weight = (codes.float() - points.float()) * scales.float().repeat_interleave(group_size, dim=1)
    return weight[:, :k]


def int4_matmul_reference(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    group_size: int,
) -> torch.Tensor:
    """x [..., K] @ dequant(W)ᵀ → [..., N] in x's dtype, accumulated in float32."""
    weight = dequantize_int4(qweight, scales, zeros, group_size, x.shape[-1])
    return (x.float() @ weight.t()).to(x.dtype)


def int8_matmul_reference(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor
) -> torch.Tensor:
    """x [..., K] @ (qweight * scales)ᵀ → [..., N] in x's dtype, accumulated in float32."""
    return ((x.float() @ qweight.float().t()) * scales.float()).to(x.dtype)
