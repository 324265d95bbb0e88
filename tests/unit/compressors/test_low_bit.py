"""Low-bit weights against their definitions: rounding error, GPTQ and AWQ beating plain
rounding on held-out data, the artifact carrying exactly the codes a stage chose, QAT
beating PTQ, and packed storage really being ~1/8 of fp32."""

import copy
import dataclasses
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from slimsweep.compressors import STAGES, CompressedModel, StageContext, WeightOnlyPlan
from slimsweep.compressors.grouped import fake_quantize, round_to_nearest
from slimsweep.kernels.packing import pack_nibbles, unpack_nibbles
from slimsweep.sweeps.runtimes.onnx_export import EXPORTERS
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from tests.grids import assert_carries_exactly


def _ort(exporter: str = "torchscript") -> OrtCpuRuntime:
    return OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", compact_weights=False, exporter=exporter))


@pytest.fixture(scope="module")
def eval_pixels(digits_data) -> torch.Tensor:
    return torch.cat([inputs["pixels"] for inputs, _ in digits_data.eval])


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("symmetric", [False, True])
def test_rounding_error_is_at_most_half_a_step(bits: int, symmetric: bool) -> None:
    weight = torch.randn(48, 200) * torch.linspace(0.1, 3, 200)
    rounded = round_to_nearest(weight, bits, 32, symmetric)
    assert int(rounded.codes.max()) < 2**bits
    step = rounded.scales.repeat_interleave(32, dim=1)[:, :200]
    error = (rounded.dequantize(200) - weight).abs()
    assert bool((error <= step / 2 + 1e-6).all())


def test_gptq_and_awq_beat_round_to_nearest_on_held_out_data(
    trained_digits, digits_task, digits_data, eval_pixels, tmp_path: Path
) -> None:
    """Each stage calibrates on a draw of 3 train batches and is scored on the eval split,
    through its ORT artifact, by the output error against fp32. Over 12 draws here (AMD
    EPYC): GPTQ 0.022-0.031x the error of rounding to nearest; AWQ 0.37-0.74x, mean 0.55,
    sd 0.11. AWQ's α=0 is plain rounding, so on its own calibration data it can never lose:
    only held-out data tells."""
    with torch.no_grad():
        reference = trained_digits(pixels=eval_pixels).numpy()
    recipes = {
        "rtn": ("quantize", {"precision": "int4_weight", "group_size": 32}),
        "gptq": ("gptq", {"bits": 4, "group_size": 32}),
        "awq": ("awq", {"bits": 4, "group_size": 32}),
    }
    ratios: dict[str, list[float]] = {"gptq": [], "awq": []}
    for draw in range(4):
        calibration = random.Random(draw).sample(digits_data.train, 3)
        data = dataclasses.replace(digits_data, calibration=calibration)
        context = StageContext(data, task=digits_task, teacher=trained_digits)
        error = {}
        for name, (stage, params) in recipes.items():
            model = STAGES.get(stage).run(
                CompressedModel(copy.deepcopy(trained_digits)), params, context
            )
            path = tmp_path / f"{name}.onnx"
            _ort().export(model, {"pixels": eval_pixels[:32]}, [], path)
            outputs = _ort().load(path)({"pixels": eval_pixels.numpy()})
            error[name] = float(((outputs - reference) ** 2).mean())
        for name in ratios:
            ratios[name].append(error[name] / error["rtn"])
    assert max(ratios["gptq"]) < 0.1, ratios
    assert max(ratios["awq"]) < 1.0 and np.mean(ratios["awq"]) < 0.85, ratios


def _packed_grids(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(codes [N, K padded], scales [N, groups], zero points [N, groups]) of every
    MatMulNBits in the artifact, decoded from the bytes ORT runs."""
    graph = onnx.load(path).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    grids = []
    for node in (n for n in graph.node if n.op_type == "MatMulNBits"):
        packed, scales, zeros = (constants[name] for name in node.input[1:4])
        n, groups, _ = packed.shape
        block = next(a.i for a in node.attribute if a.name == "block_size")
        codes = unpack_nibbles(packed.reshape(n, -1), groups * block)
        grids.append(
            (codes, scales.reshape(n, groups), unpack_nibbles(zeros.reshape(n, -1), groups))
        )
    return grids


@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("stage", ["gptq", "awq", "qat"])
def test_the_artifact_packs_exactly_the_codes_the_stage_chose(
    stage, exporter, trained_digits, digits_task, digits_data, eval_pixels, tmp_path: Path
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    params = {"steps": 20} if stage == "qat" else {}
    out = STAGES.get(stage).run(CompressedModel(copy.deepcopy(trained_digits)), params, context)
    plan = out.quantization
    assert isinstance(plan, WeightOnlyPlan) and len(plan.codes) == 2
    _ort(exporter).export(out, {"pixels": eval_pixels[:32]}, [], tmp_path / "m.onnx")
    packed = _packed_grids(tmp_path / "m.onnx")
    assert_carries_exactly(packed, plan)

    # A weight changed after the stage ran has lost its codes: refused, not rounded again.
    with torch.no_grad():
        last = [m for m in out.module.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(1.01)
    with pytest.raises(ValueError, match="refusing to round it again"):
        _ort(exporter).export(out, {"pixels": eval_pixels[:32]}, [], tmp_path / "lost.onnx")


def test_qat_beats_ptq_at_3_bits_on_held_out_loss(
    trained_digits, digits_task, digits_data, eval_pixels
) -> None:
    """QAT's eval loss gap to fp32 against post-training rounding's, over 5 orders of the
    train batches. Measured here (AMD EPYC): PTQ's gap 0.0091; QAT's gaps -0.0047 to
    0.0009 (5 orders), sd 0.0025, so their mean sits ~4 sd of a mean below half PTQ's gap.
    At 4 bits PTQ's gap is 0.0033 and a one-run 5 % margin failed on another CPU."""
    labels = torch.cat([targets for _, targets in digits_data.eval])
    params = {"bits": 3, "group_size": 256, "symmetric": True}

    def loss(module: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(digits_task.loss(module(pixels=eval_pixels), labels))

    ptq = copy.deepcopy(trained_digits)
    with torch.no_grad():
        for linear in (ptq.classifier[1], ptq.classifier[3]):
            linear.weight.copy_(fake_quantize(linear.weight, 3, 256, True))
    fp32_loss = loss(trained_digits)
    ptq_gap = loss(ptq) - fp32_loss
    qat_gaps = []
    for order in range(5):
        train = random.Random(order).sample(digits_data.train, len(digits_data.train))
        data = dataclasses.replace(digits_data, train=train)
        context = StageContext(data, task=digits_task, teacher=trained_digits)
        qat = STAGES.get("qat").run(CompressedModel(copy.deepcopy(trained_digits)), params, context)
        qat_gaps.append(loss(qat.module) - fp32_loss)
    assert ptq_gap > 0.004  # 3-bit rounding costs digits something measurable
    assert np.mean(qat_gaps) < 0.5 * ptq_gap, (ptq_gap, qat_gaps)


def test_packed_int4_weights_take_an_eighth_of_fp32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024, bias=False)).eval()
    x = torch.randn(4, 1024)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu"))
    plan = WeightOnlyPlan(group_size=128)
    runtime.export(CompressedModel(model, plan), {"input": x}, [], tmp_path / "q.onnx")
    runtime.export(CompressedModel(model), {"input": x}, [], tmp_path / "f.onnx")
    fp32, packed = (tmp_path / "f.onnx").stat().st_size, (tmp_path / "q.onnx").stat().st_size
    # 1/8 for the codes, plus a 4-byte scale and half a byte of zero point per 128 weights
    assert packed < fp32 / 8 * (1 + 4.5 * 8 / 128 / 4) + 4096
    assert packed < 0.14 * fp32


def test_nibbles_round_trip() -> None:
    codes = np.random.default_rng(0).integers(0, 16, (7, 33))
    np.testing.assert_array_equal(unpack_nibbles(pack_nibbles(codes), 33), codes)
