"""Each Triton kernel against its plain-torch reference, on fresh random inputs: compiled on
a GPU, under Triton's interpreter on the CPU (see conftest.py)."""

import os

import pytest
import torch

from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.kernels import triton_mm
from slimsweep.kernels.packing import PackedInt4, pack_int4, quantize_int8_per_channel
from slimsweep.kernels.reference import (
    dequantize_int4,
    int4_matmul_reference,
    int8_matmul_reference,
)
from slimsweep.kernels.triton_mm import TileConfig

DTYPES = [torch.float16, torch.bfloat16]
# (rows, out, in, group): decode with split-K, K padded to whole groups, N off the tile,
# groups of every width, a prefill-sized tile
SHAPES = [
    (1, 96, 256, 32),
    (1, 96, 512, 128),  # the decode tile with block_k 128 and split-K
    (4, 64, 200, 64),
    (16, 80, 128, 16),
    (33, 64, 512, 128),
    (130, 72, 256, 256),
]


def _generator() -> tuple[torch.Generator, int]:
    seed = int.from_bytes(os.urandom(4), "little")
    return torch.Generator().manual_seed(seed), seed


def _int4(out: int, k: int, group: int, bits: int, symmetric: bool, g: torch.Generator):
    weight = torch.randn(out, k, generator=g) * (1 + torch.rand(out, 1, generator=g))
    return pack_int4(round_to_nearest(weight, bits, group, symmetric), k)


def _on(packed: PackedInt4, device: str, dtype: torch.dtype) -> tuple:
    return packed.qweight.to(device), packed.scales.to(device, dtype), packed.zeros.to(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("rows", "out", "k", "group"), SHAPES)
@pytest.mark.parametrize(("bits", "symmetric"), [(4, False), (4, True), (3, False)])
def test_int4_kernel_matches_its_reference(
    device, assert_close_at, dtype, rows, out, k, group, bits, symmetric
):
    g, seed = _generator()
    packed = _int4(out, k, group, bits, symmetric, g)
    x = torch.randn(rows, k, generator=g).to(device, dtype)
    weights = _on(packed, device, dtype)
    expected = int4_matmul_reference(x, *weights, group)
    actual = triton_mm.int4_matmul(x, *weights, group)
    assert actual.dtype == dtype and actual.shape == (rows, out), seed
    assert_close_at(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("rows", "out", "k", "group"), SHAPES)
def test_int8_kernel_matches_its_reference(device, assert_close_at, dtype, rows, out, k, group):
    g, seed = _generator()
    packed = quantize_int8_per_channel(torch.randn(out, k, generator=g))
    x = torch.randn(rows, k, generator=g).to(device, dtype)
    weights = packed.qweight.to(device), packed.scales.to(device, dtype)
    assert_close_at(triton_mm.int8_matmul(x, *weights), int8_matmul_reference(x, *weights), dtype)


TILES = [  # every tile shape `choose_tiles` picks, with and without split-K
    TileConfig(16, 64, 32, 1, 4, 4),
    TileConfig(16, 64, 32, 4, 4, 4),
    TileConfig(16, 64, 64, 2, 4, 4),
    TileConfig(64, 64, 64, 2, 4, 4),
    TileConfig(128, 128, 64, 1, 8, 3),
]


@pytest.mark.parametrize("tiles", TILES, ids=repr)
def test_every_tile_shape_and_split_matches_the_reference(device, assert_close_at, tiles) -> None:
    g, seed = _generator()
    packed = _int4(136, 256, 64, 4, False, g)
    x = torch.randn(3, 5, 256, generator=g).to(device, torch.float16)  # leading dims kept
    weights = _on(packed, device, torch.float16)
    actual = triton_mm.int4_matmul(x, *weights, 64, tiles=tiles)
    assert actual.shape == (3, 5, 136), seed
    assert_close_at(actual, int4_matmul_reference(x, *weights, 64), torch.float16)
    int8 = quantize_int8_per_channel(torch.randn(136, 256, generator=g))
    weights = int8.qweight.to(device), int8.scales.to(device, torch.float16)
    assert_close_at(
        triton_mm.int8_matmul(x, *weights, tiles=tiles),
        int8_matmul_reference(x, *weights),
        torch.float16,
    )


def test_decode_shapes_split_k_to_fill_the_device() -> None:
    h100 = 132  # SMs
    tiles = triton_mm.choose_tiles(1, 8192, 8192, 128, h100)
    assert tiles.block_m == 16 and tiles.split_k == 4  # 128 output tiles × 4 ≥ 2 per SM
    assert triton_mm.choose_tiles(4096, 8192, 8192, 128, h100).split_k == 1
    for m, n, k, group in [(1, 96, 200 + 56, 32), (1, 4096, 4096 + 128 * 3, 128), (8, 64, 96, 32)]:
        picked = triton_mm.choose_tiles(m, n, k, group, h100)
        assert (k // picked.block_k) % picked.split_k == 0 and group % picked.block_k == 0


def test_a_tile_that_would_drop_part_of_k_or_mix_groups_is_refused(device) -> None:
    packed = _int4(64, 256, 32, 4, False, _generator()[0])
    x = torch.randn(1, 256).to(device, torch.float16)
    weights = _on(packed, device, torch.float16)
    for tiles, message in [
        (TileConfig(16, 64, 32, 3, 4, 4), "does not divide the K blocks"),
        (TileConfig(16, 64, 64, 1, 4, 4), "does not divide the group"),
    ]:
        with pytest.raises(ValueError, match=message):
            triton_mm.int4_matmul(x, *weights, 32, tiles=tiles)
    with pytest.raises(ValueError, match="fp16 or bf16"):
        triton_mm.int4_matmul(x.float(), *weights, 32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_above_the_crossover_the_dequantized_weight_goes_to_the_gemm(
    device, assert_close_at, dtype, monkeypatch
) -> None:
    g, _ = _generator()
    packed = _int4(72, 200, 32, 4, False, g)
    weights = _on(packed, device, dtype)
    dequantized = triton_mm.dequantize_int4_triton(*weights, 32, 200, dtype)
    assert_close_at(dequantized, dequantize_int4(*weights, 32, 200), dtype)
    monkeypatch.setattr(triton_mm, "DEQUANTIZE_ABOVE_ROWS", 8)
    x = torch.randn(20, 200, generator=g).to(device, dtype)
    assert_close_at(
        triton_mm.int4_matmul(x, *weights, 32), int4_matmul_reference(x, *weights, 32), dtype
    )
    int8 = quantize_int8_per_channel(torch.randn(72, 200, generator=g))
    weights = int8.qweight.to(device), int8.scales.to(device, dtype)
    assert_close_at(triton_mm.int8_matmul(x, *weights), int8_matmul_reference(x, *weights), dtype)
