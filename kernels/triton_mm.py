"""Weight-only INT4 (grouped) and INT8 (per channel) matmuls in Triton: y = x @ dequant(W)ᵀ
for fp16/bf16 activations, reading the shared packed layout (`kernels/packing.py`).

One kernel serves both formats. Each program owns a BLOCK_M × BLOCK_N tile of y and walks
its share of K (split-K when few tiles would leave SMs idle, as at decode shapes). An INT4
K block lies inside one group, so the integer part (code - zero) goes through `tl.dot` and
the group's scale multiplies the [BLOCK_M, BLOCK_N] partial product, not the weight tile.
Above `DEQUANTIZE_ABOVE_ROWS` rows the matmul is compute bound: the weight is dequantized
once by a second kernel and cuBLAS does the GEMM.

Importing this module imports Triton; under TRITON_INTERPRET=1 (set before the import)
the kernels run on CPU tensors, which is how CI checks them against the references.
"""

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton import knobs

DEQUANTIZE_ABOVE_ROWS = 1024  # untuned: the benchmark's first GPU run should set it


@dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int


@triton.jit
def _int4_codes(
    w_ptr,
    z_ptr,
    rn,
    kb,
    stride_wn,
    stride_zn,
    N,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP: tl.constexpr,
):
    """(code - zero) as int32 [BLOCK_N, BLOCK_K] for K block `kb` (inside one group), and
    that group's index."""
    half = kb * (BLOCK_K // 2) + tl.arange(0, BLOCK_K // 2)
    packed = tl.load(w_ptr + rn[:, None] * stride_wn + half[None, :], mask=rn[:, None] < N, other=0)
    packed = packed.to(tl.int32)
    codes = tl.reshape(tl.join(packed & 0xF, packed >> 4), (BLOCK_N, BLOCK_K))
    group = (kb * BLOCK_K) // GROUP
    zero_byte = tl.load(z_ptr + rn * stride_zn + group // 2, mask=rn < N, other=0).to(tl.int32)
    zero = (zero_byte >> ((group % 2) * 4)) & 0xF
    return codes - zero[:, None], group


@triton.jit
def _weight_only_mm(
    x_ptr, w_ptr, s_ptr, z_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_wn, stride_sn, stride_zn, stride_om,
    INT4: tl.constexpr, GROUP: tl.constexpr, K_STEPS: tl.constexpr, DOT_IN_F32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
):  # fmt: skip
    # int64 offsets: M·K or N·K may pass 2³¹ at prefill sizes
    rm = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(0, K_STEPS):  # a constant: Triton's interpreter needs one here
        kb = tl.program_id(2) * K_STEPS + step
        rk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
        x = tl.load(
            x_ptr + rm[:, None] * stride_xm + rk[None, :],
            mask=(rm[:, None] < M) & (rk[None, :] < K),
            other=0.0,
        )
        if DOT_IN_F32:
            x = x.to(tl.float32)
        if INT4:
            centred, group = _int4_codes(
                w_ptr, z_ptr, rn, kb, stride_wn, stride_zn, N, BLOCK_N, BLOCK_K, GROUP
            )
            scale = tl.load(s_ptr + rn * stride_sn + group, mask=rn < N, other=0.0)
            acc += tl.dot(x, tl.trans(centred.to(x.dtype))) * scale.to(tl.float32)[None, :]
        else:
            w = tl.load(
                w_ptr + rn[:, None] * stride_wn + rk[None, :],
                mask=(rn[:, None] < N) & (rk[None, :] < K),
                other=0,
            )
            acc += tl.dot(x, tl.trans(w.to(x.dtype)))
    if not INT4:
        acc *= tl.load(s_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + rm[:, None] * stride_om + rn[None, :]
    inside = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT_K == 1:
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=inside)
    else:
        tl.atomic_add(out, acc, mask=inside, sem="relaxed")


@triton.jit
def _dequantize_int4(
    w_ptr, s_ptr, z_ptr, out_ptr, N, K,
    stride_wn, stride_sn, stride_zn, stride_on,
    GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rn = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    kb = tl.program_id(1)
    centred, group = _int4_codes(
        w_ptr, z_ptr, rn, kb, stride_wn, stride_zn, N, BLOCK_N, BLOCK_K, GROUP
    )
    scale = tl.load(s_ptr + rn * stride_sn + group, mask=rn < N, other=0.0).to(tl.float32)
    rk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    weight = (centred.to(tl.float32) * scale[:, None]).to(out_ptr.dtype.element_ty)
    tl.store(
        out_ptr + rn[:, None] * stride_on + rk[None, :],
        weight,
        mask=(rn[:, None] < N) & (rk[None, :] < K),
    )


def _interpreted_bf16(x: torch.Tensor) -> bool:
    """Triton's interpreter multiplies bf16 tiles as their raw 16-bit integers (numpy has no
    bfloat16), so there the bf16 dot runs on the same values widened to float32."""
    return knobs.runtime.interpret and x.dtype == torch.bfloat16


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # the interpreter: any small number exercises split-K
    return torch.cuda.get_device_properties(device).multi_processor_count


def choose_tiles(m: int, n: int, k: int, block_k_limit: int, sm_count: int) -> TileConfig:
    """A tile shape per regime (decode: M ≤ 16, mid, prefill). Split-K keeps about two
    programs per SM busy when the output alone has too few tiles."""
    if m <= 16:
        block_m, block_n, warps, stages = 16, 64, 4, 4
    elif m <= 64:
        block_m, block_n, warps, stages = 64, 64, 4, 4
    else:
        block_m, block_n, warps, stages = 128, 128, 8, 3
    block_k = min(block_k_limit, 128 if m <= 64 else 64)
    tiles = triton.cdiv(m, block_m) * triton.cdiv(n, block_n)
    k_blocks = triton.cdiv(k, block_k)
    split_k = 1
    busy = 2 * sm_count
    while split_k < 16 and tiles * split_k < busy and k_blocks % (2 * split_k) == 0:
        split_k *= 2
    return TileConfig(block_m, block_n, block_k, split_k, warps, stages)


def _launch(x: torch.Tensor, weight_args: tuple, n: int, k_packed: int, int4: bool, group: int,
            block_k_limit: int, tiles: TileConfig | None) -> torch.Tensor:  # fmt: skip
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    m, k = rows.shape
    tiles = tiles or choose_tiles(m, n, k_packed, block_k_limit, _sm_count(x.device))
    _check(x, k_packed, group if int4 else None, tiles)
    qweight, scales, zeros = weight_args
    if tiles.split_k > 1:  # the programs of one tile add their shares into float32
        out = torch.zeros((m, n), device=x.device, dtype=torch.float32)
    else:
        out = torch.empty((m, n), device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(m, tiles.block_m), triton.cdiv(n, tiles.block_n), tiles.split_k)
    _weight_only_mm[grid](
        rows, qweight, scales, zeros, out, m, n, k,
        rows.stride(0), qweight.stride(0), scales.stride(0), zeros.stride(0), out.stride(0),
        INT4=int4, GROUP=group, K_STEPS=triton.cdiv(k_packed, tiles.block_k) // tiles.split_k,
        DOT_IN_F32=_interpreted_bf16(x), BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n,
        BLOCK_K=tiles.block_k, SPLIT_K=tiles.split_k,
        num_warps=tiles.num_warps, num_stages=tiles.num_stages,
    )  # fmt: skip
    return out.to(x.dtype).reshape(*x.shape[:-1], n)


def _check(x: torch.Tensor, k_packed: int, group: int | None, tiles: TileConfig) -> None:
    """What the kernel assumes and cannot see: a tile it is handed (by a caller or a tuner)
    that breaks these would drop part of K or mix two groups' scales, silently."""
    if x.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"the weight-only kernels take fp16 or bf16 activations, not {x.dtype}")
    if x.shape[-1] > k_packed:
        raise ValueError(f"x has {x.shape[-1]} features; the packed weight holds {k_packed}")
    if triton.cdiv(k_packed, tiles.block_k) % tiles.split_k:
        raise ValueError(f"split_k={tiles.split_k} does not divide the K blocks of {tiles}")
    if group is not None and group % tiles.block_k:
        raise ValueError(f"block_k={tiles.block_k} does not divide the group of {group}")


def dequantize_int4_triton(
    qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group_size: int, k: int,
    dtype: torch.dtype,
) -> torch.Tensor:  # fmt: skip
    """The weight [N, k] in `dtype`, for a GEMM above the crossover."""
    n = qweight.shape[0]
    out = torch.empty((n, k), device=qweight.device, dtype=dtype)
    block_k = min(group_size, 128)
    grid = (triton.cdiv(n, 64), triton.cdiv(k, block_k))
    _dequantize_int4[grid](
        qweight, scales, zeros, out, n, k,
        qweight.stride(0), scales.stride(0), zeros.stride(0), out.stride(0),
        GROUP=group_size, BLOCK_N=64, BLOCK_K=block_k,
    )  # fmt: skip
    return out


def int4_matmul(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
    group_size: int, tiles: TileConfig | None = None,
) -> torch.Tensor:  # fmt: skip
    """x [..., K] fp16/bf16 @ dequant(W)ᵀ with W in the shared INT4 layout → [..., N]."""
    rows = x.numel() // x.shape[-1]
    if tiles is None and rows > DEQUANTIZE_ABOVE_ROWS:
        weight = dequantize_int4_triton(qweight, scales, zeros, group_size, x.shape[-1], x.dtype)
        return x @ weight.t()
    k_packed = 2 * qweight.shape[1]
    return _launch(
        x, (qweight, scales, zeros), qweight.shape[0], k_packed, True, group_size, group_size, tiles
    )


def int8_matmul(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, tiles: TileConfig | None = None
) -> torch.Tensor:
    """x [..., K] fp16/bf16 @ (qweight * scales)ᵀ with per-channel INT8 weights → [..., N]."""
    if tiles is None and x.numel() // x.shape[-1] > DEQUANTIZE_ABOVE_ROWS:
        return x @ (qweight.to(x.dtype) * scales[:, None]).t()
    k = qweight.shape[1]
    return _launch(x, (qweight, scales, scales), qweight.shape[0], k, False, 1, 128, tiles)
