"""Low-bit weights against their definitions: rounding error, GPTQ and AWQ beating plain
rounding, QAT beating PTQ, and packed storage really being ~1/8 of fp32."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, QuantizationPlan, StageContext
from slimsweep.compressors.awq import awq_scale
from slimsweep.compressors.gptq import gptq_round
from slimsweep.compressors.grouped import fake_quantize, round_to_nearest
from slimsweep.compressors.layers import layer_inputs
from slimsweep.compressors.low_bit import LowBitConfig
from slimsweep.sweeps.runtimes.onnx_nbits import pack_nibbles, unpack_nibbles
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("symmetric", [False, True])
def test_rounding_error_is_at_most_half_a_step(bits: int, symmetric: bool) -> None:
    weight = torch.randn(48, 200) * torch.linspace(0.1, 3, 200)
    rounded = round_to_nearest(weight, bits, 32, symmetric)
    assert int(rounded.codes.max()) < 2**bits
    step = rounded.scales.repeat_interleave(32, dim=1)[:, :200]
    error = (rounded.dequantize(200) - weight).abs()
    assert bool((error <= step / 2 + 1e-6).all())


def _layer_error(x: torch.Tensor, weight: torch.Tensor, rounded: torch.Tensor) -> float:
    return float((x @ rounded.T - x @ weight.T).pow(2).mean())


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("layer", ["classifier.1", "classifier.3"])
def test_gptq_and_awq_beat_round_to_nearest_on_calibration_data(
    trained_digits, digits_data, bits: int, layer: str
) -> None:
    linear = trained_digits.get_submodule(layer)
    weight = linear.weight.detach()
    x = layer_inputs(trained_digits, linear, digits_data.calibration)
    config = LowBitConfig(bits=bits, group_size=32)
    plain = _layer_error(x, weight, fake_quantize(weight, bits, 32, False))
    gptq = _layer_error(x, weight, gptq_round(weight, x, config, 0.01).dequantize(x.shape[1]))
    scale = awq_scale(weight, x, config, 20)
    awq_weight = round_to_nearest(weight * scale, bits, 32, False).dequantize(x.shape[1])
    awq = float(((x / scale) @ awq_weight.T - x @ weight.T).pow(2).mean())
    assert gptq < 0.5 * plain
    assert awq < plain


@pytest.mark.parametrize("stage", ["gptq", "awq", "qat"])
def test_the_runtime_runs_the_codes_the_stage_chose(
    stage, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    params = {"steps": 20} if stage == "qat" else {}
    out = STAGES.get(stage).run(CompressedModel(copy.deepcopy(trained_digits)), params, context)
    assert out.quantization.precision == "int4_weight" and len(out.quantization.rounded) == 2
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu"))
    inputs = digits_data.eval[0][0]
    runtime.export(out, inputs, [], tmp_path / "m.onnx")
    predicted = runtime.load(tmp_path / "m.onnx")({"pixels": inputs["pixels"].numpy()})
    with torch.no_grad():
        expected = out.module(**inputs).numpy()
    # the only difference left is MatMulNBits quantizing activations to int8 at run time
    assert np.abs(predicted - expected).max() < 0.05 * np.abs(expected).max()


def test_qat_beats_ptq_at_int4_on_digits(trained_digits, digits_task, digits_data) -> None:
    params = {"bits": 4, "group_size": 256, "symmetric": True}
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    ptq = copy.deepcopy(trained_digits)
    with torch.no_grad():
        for linear in (ptq.classifier[1], ptq.classifier[3]):
            linear.weight.copy_(fake_quantize(linear.weight, 4, 256, True))
    qat = STAGES.get("qat").run(CompressedModel(copy.deepcopy(trained_digits)), params, context)
    pixels = torch.cat([inputs["pixels"] for inputs, _ in digits_data.eval])
    labels = torch.cat([targets for _, targets in digits_data.eval])
    with torch.no_grad():
        ptq_out, qat_out = ptq(pixels=pixels), qat.module(pixels=pixels)
    # INT4 linears cost digits no accuracy after PTQ, so the gain shows in the eval loss
    assert digits_task.loss(qat_out, labels) < 0.95 * digits_task.loss(ptq_out, labels)
    assert (qat_out.argmax(1) == labels).float().mean() >= (
        ptq_out.argmax(1) == labels
    ).float().mean()


def test_packed_int4_weights_take_an_eighth_of_fp32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024, bias=False)).eval()
    x = torch.randn(4, 1024)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu"))
    plan = QuantizationPlan("int4_weight", group_size=128)
    runtime.export(CompressedModel(model, plan), {"input": x}, [], tmp_path / "q.onnx")
    runtime.export(CompressedModel(model), {"input": x}, [], tmp_path / "f.onnx")
    fp32, packed = (tmp_path / "f.onnx").stat().st_size, (tmp_path / "q.onnx").stat().st_size
    # 1/8 for the codes, plus a 4-byte scale and half a byte of zero point per 128 weights
    assert packed < fp32 / 8 * (1 + 4.5 * 8 / 128 / 4) + 4096
    assert packed < 0.14 * fp32


def test_nibbles_round_trip() -> None:
    codes = np.random.default_rng(0).integers(0, 16, (7, 33))
    np.testing.assert_array_equal(unpack_nibbles(pack_nibbles(codes), 33), codes)
