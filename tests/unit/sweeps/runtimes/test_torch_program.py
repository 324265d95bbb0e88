import numpy as np
import pytest
import torch

from slimsweep.compressors import CompressedModel, HalfPlan
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.runtimes.torch_program import (
    TorchCpuConfig,
    TorchCpuRuntime,
    TorchCudaConfig,
)
from slimsweep.sweeps.task import evaluate


def test_fp16_halves_the_artifact_and_computes_in_half(
    trained_digits, digits_task, digits_data, tmp_path
) -> None:
    runtime = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu"))
    inputs = digits_task.latency_inputs()
    runtime.export(CompressedModel(trained_digits), inputs, [], tmp_path / "fp32.pt2")
    before = {k: v.clone() for k, v in trained_digits.state_dict().items()}
    runtime.export(
        CompressedModel(trained_digits, HalfPlan("fp16")), inputs, [], tmp_path / "fp16.pt2"
    )
    for key, value in trained_digits.state_dict().items():  # exporting left the model as it was
        assert value.dtype == torch.float32 and torch.equal(value, before[key])
    ratio = (tmp_path / "fp16.pt2").stat().st_size / (tmp_path / "fp32.pt2").stat().st_size
    assert 0.45 < ratio < 0.56
    program = torch.export.load(str(tmp_path / "fp16.pt2"))
    assert {t.dtype for t in program.state_dict.values()} == {torch.float16}
    predict = runtime.load(tmp_path / "fp16.pt2")
    expected = trained_digits(**inputs).detach().numpy()
    np.testing.assert_allclose(
        predict({k: v.numpy() for k, v in inputs.items()}), expected, atol=5e-2
    )
    assert evaluate(digits_task, predict, digits_data.eval) >= 0.95


def test_compiled_program_gives_the_same_outputs(trained_digits, digits_task, tmp_path) -> None:
    eager = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu"))
    compiled = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu", mode="compile"))
    inputs = digits_task.latency_inputs()
    eager.export(CompressedModel(trained_digits), inputs, [], tmp_path / "m.pt2")
    numpy_inputs = {k: v.numpy() for k, v in inputs.items()}
    np.testing.assert_allclose(
        compiled.load(tmp_path / "m.pt2")(numpy_inputs),
        eager.load(tmp_path / "m.pt2")(numpy_inputs),
        atol=1e-4,
    )


def test_cuda_graphs_are_refused_on_the_cpu_naming_the_modes() -> None:
    with pytest.raises(
        ConfigError, match="runtime.mode='cuda_graphs'.*'eager', 'compile', 'max_autotune'$"
    ):
        TorchCpuConfig(name="torch_cpu", mode="cuda_graphs")
    assert TorchCudaConfig(name="torch_cuda", mode="cuda_graphs").tf32 is False
