"""Packed linears in exported programs: the packed bytes are what is saved and loaded, the
stage's codes are what runs, and a fresh process loads the program through the runtime."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, Int8WeightOnlyPlan, StageContext
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.kernels.linear import QuantLinear4, replace_linears
from slimsweep.kernels.packing import pack_int4
from slimsweep.sweeps.runtimes.torch_plans import TORCH_CUDA_HANDLERS
from slimsweep.sweeps.runtimes.torch_program import TorchCpuConfig, TorchCpuRuntime
from slimsweep.sweeps.task import evaluate


def _mlp(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(200, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    ).eval()


def _export(module: torch.nn.Module, path: Path) -> None:
    x = torch.randn(4, 200)
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def _packed(module: torch.nn.Module) -> torch.nn.Module:
    module = copy.deepcopy(module)
    replace_linears(
        module,
        lambda name, linear: QuantLinear4(
            linear, pack_int4(round_to_nearest(linear.weight, 4, 32, False), linear.in_features)
        ),
    )
    return module


def test_a_quant_linear_program_saves_the_packed_bytes_and_loads_in_a_fresh_process(
    tmp_path,
) -> None:
    model = _mlp(1024)
    packed = _packed(model)
    _export(model, tmp_path / "fp32.pt2")
    _export(packed, tmp_path / "int4.pt2")
    packed_bytes = sum(t.nbytes for t in packed.state_dict().values())
    float_bytes = sum(t.nbytes for t in model.state_dict().values())
    assert packed_bytes < 0.2 * float_bytes  # 4-bit codes, a float32 scale per 32 weights
    on_disk = (tmp_path / "int4.pt2").stat().st_size
    overhead = (tmp_path / "fp32.pt2").stat().st_size - float_bytes  # the program's own
    assert packed_bytes <= on_disk <= packed_bytes + 2 * overhead, (on_disk, packed_bytes)
    program = torch.export.load(str(tmp_path / "int4.pt2"))
    assert torch.equal(program.state_dict["0.qweight"], packed[0].qweight)
    x = torch.randn(7, 200)
    expected = packed(x)
    torch.testing.assert_close(program.module()(x), expected)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "expected.npy", expected.detach().numpy())
    script = (
        "import sys, numpy as np; from pathlib import Path\n"
        "from slimsweep.sweeps.runtimes.torch_program import TorchCpuConfig, TorchCpuRuntime\n"
        "folder = Path(sys.argv[1])\n"
        "runtime = TorchCpuRuntime(TorchCpuConfig(name='torch_cpu'))\n"
        "got = runtime.executable(folder / 'int4.pt2')[0](__import__('torch').from_numpy("
        "np.load(folder / 'x.npy')))\n"
        "np.testing.assert_allclose(got.detach().numpy(), np.load(folder / 'expected.npy'),"
        " atol=1e-5)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)


def _gptq(trained_digits, digits_task, digits_data, group_size: int) -> CompressedModel:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    model = CompressedModel(copy.deepcopy(trained_digits))
    return STAGES.get("gptq").run(model, {"group_size": group_size}, context)


def test_torch_cpu_runs_a_gptq_stages_codes_on_torchs_int4_kernel(
    trained_digits, digits_task, digits_data, tmp_path
) -> None:
    model = _gptq(trained_digits, digits_task, digits_data, 32)
    runtime = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu"))
    inputs = digits_task.latency_inputs()
    runtime.export(model, inputs, [], tmp_path / "int4.pt2")
    program = torch.export.load(str(tmp_path / "int4.pt2")).graph_module.code
    assert "_weight_int4pack_mm_for_cpu" in program
    pixels = torch.cat([b["pixels"] for b, _ in digits_data.eval])[:64]
    expected = model.module(pixels).detach()  # the stage left the rounded weights in place
    got = runtime.load(tmp_path / "int4.pt2")({"pixels": pixels.numpy()})
    scale = float(expected.abs().max())  # the linears meet their inputs in bf16
    assert float(np.abs(got - expected.numpy()).max()) <= 2e-2 * scale, scale
    assert (got.argmax(1) == expected.numpy().argmax(1)).mean() >= 0.98


def test_torch_cpu_int8_weights_keep_the_models_accuracy(
    trained_digits, digits_task, digits_data, tmp_path
) -> None:
    runtime = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu"))
    inputs = digits_task.latency_inputs()
    runtime.export(CompressedModel(trained_digits), inputs, [], tmp_path / "fp32.pt2")
    plan = CompressedModel(trained_digits, Int8WeightOnlyPlan())
    runtime.export(plan, inputs, [], tmp_path / "int8.pt2")
    program = torch.export.load(str(tmp_path / "int8.pt2"))
    assert "_weight_int8pack_mm" in program.graph_module.code
    int8 = [v for v in program.state_dict.values() if v.dtype == torch.int8]
    linears = [m for m in trained_digits.modules() if isinstance(m, torch.nn.Linear)]
    assert sorted(t.numel() for t in int8) == sorted(m.weight.numel() for m in linears)
    fp32 = evaluate(digits_task, runtime.load(tmp_path / "fp32.pt2"), digits_data.eval)
    assert (
        evaluate(digits_task, runtime.load(tmp_path / "int8.pt2"), digits_data.eval) >= fp32 - 0.01
    )


@pytest.mark.parametrize("dtype", [torch.float16])
def test_torch_cuda_packs_the_stages_codes_into_its_quant_linears(
    trained_digits, digits_task, digits_data, dtype
) -> None:
    model = _gptq(trained_digits, digits_task, digits_data, 64)
    realise = TORCH_CUDA_HANDLERS.get(model.quantization)
    module, example = realise(
        copy.deepcopy(model.module), digits_task.latency_inputs(), model.quantization
    )
    layers = [m for m in module.modules() if isinstance(m, QuantLinear4)]
    assert len(layers) == len(model.quantization.codes) == 2
    for layer in layers:
        chosen = [
            c for c in model.quantization.codes.values() if c.codes.shape[0] == layer.out_features
        ]
        assert len(chosen) == 1
        packed = pack_int4(chosen[0], layer.in_features)
        assert torch.equal(layer.qweight, packed.qweight) and torch.equal(layer.zeros, packed.zeros)
        assert layer.scales.dtype == dtype
    assert example["pixels"].dtype == dtype
    with torch.no_grad():  # the reference op on the CPU, in fp16 as on the GPU
        got = module(**example).float()
        expected = model.module(**{k: v.float() for k, v in example.items()})
    assert float((got - expected).abs().max()) <= 2e-2 * float(expected.abs().max())
