"""The shared INT4 layout, bit for bit: the stage's codes go in unchanged, the low nibble
holds the even column, and the ONNX graph stores the very same bytes."""

import copy

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.kernels.packing import pack_int4, quantize_int8_per_channel
from slimsweep.kernels.reference import dequantize_int4
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime


def test_two_codes_to_a_byte_the_first_in_the_low_nibble() -> None:
    codes = torch.tensor([[1, 2, 3, 4, 15, 0, 7, 8]], dtype=torch.uint8)
    rounded = round_to_nearest(torch.zeros(1, 8), 4, 8, False)
    rounded = type(rounded)(codes, torch.ones(1, 1), torch.tensor([[9]], dtype=torch.uint8), 8)
    packed = pack_int4(rounded, 8)
    assert packed.qweight.tolist() == [[0x21, 0x43, 0x0F, 0x87]]
    assert packed.zeros.tolist() == [[0x09]]


def test_a_gptq_stages_codes_pack_and_unpack_unchanged(
    trained_digits, digits_task, digits_data
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    params = {"group_size": 32}
    out = STAGES.get("gptq").run(CompressedModel(copy.deepcopy(trained_digits)), params, context)
    for chosen in out.quantization.codes.values():
        in_features = chosen.codes.shape[1]
        packed = pack_int4(chosen, in_features)
        assert torch.equal(packed.codes(), chosen.codes)
        assert torch.equal(packed.zero_points(), chosen.zeros)
        weight = dequantize_int4(packed.qweight, packed.scales, packed.zeros, 32, in_features)
        torch.testing.assert_close(weight, chosen.dequantize(in_features))


def test_the_onnx_graph_stores_the_codes_by_matmulnbits_rules(trained_digits, tmp_path) -> None:
    """Decoded here by MatMulNBits' own rules, not by the shared packer: B [N, blocks, G/2]
    holds column 2j of a block in byte j's low nibble; zero points go two blocks a byte."""
    plan_model = STAGES.get("quantize").run(
        CompressedModel(copy.deepcopy(trained_digits)),
        {"precision": "int4_weight", "group_size": 32},
        None,
    )
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", compact_weights=False))
    runtime.export(plan_model, {"pixels": torch.rand(2, 1, 8, 8)}, [], tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    stored = []
    for node in (n for n in graph.node if n.op_type == "MatMulNBits"):
        b, scales, zero_bytes = (constants[name] for name in node.input[1:4])
        n, blocks, _ = b.shape
        codes = np.empty((n, blocks * 32), np.uint8)
        codes[:, 0::2], codes[:, 1::2] = (b & 0x0F).reshape(n, -1), (b >> 4).reshape(n, -1)
        zero_bytes = zero_bytes.reshape(n, -1)
        zeros = np.array(
            [
                [(zero_bytes[r, g // 2] >> (4 * (g % 2))) & 0x0F for g in range(blocks)]
                for r in range(n)
            ]
        )
        stored.append((codes, scales.reshape(n, blocks), zeros))
    linears = [m for m in trained_digits.modules() if isinstance(m, torch.nn.Linear)]
    assert len(stored) == len(linears) == 2
    for linear in linears:
        rounded = round_to_nearest(linear.weight, 4, 32, False)
        expected = (rounded.codes.numpy(), rounded.scales.numpy(), rounded.zeros.numpy())
        assert any(
            all(
                a.shape == e.shape and np.array_equal(a, e)
                for a, e in zip(grid, expected, strict=True)
            )
            for grid in stored
        )


def test_int8_rows_round_to_their_own_scale() -> None:
    weight = torch.randn(6, 40) * torch.logspace(-3, 1, 6)[:, None]
    packed = quantize_int8_per_channel(weight)
    assert packed.qweight.dtype == torch.int8 and packed.qweight.abs().max() == 127
    error = (packed.qweight.float() * packed.scales[:, None] - weight).abs()
    assert (error <= packed.scales[:, None] / 2 + 1e-7).all()
