"""GPU runtimes against their CPU twins. Skipped where this machine has no CUDA GPU or no
onnxruntime CUDA provider (always in CI); the CPU path is complete without them."""

from pathlib import Path

import numpy as np
import pytest

from slimsweep.compressors import CompressedModel, HalfPlan, WeightOnlyPlan
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime

pytestmark = pytest.mark.gpu


def _pair(gpu: str, cpu: str):
    reason = RUNTIMES.get(gpu).unavailable()
    if reason:
        pytest.skip(reason)
    return (build_runtime(RUNTIMES.get(n).config_type(name=n)) for n in (gpu, cpu))


@pytest.mark.parametrize(
    ("gpu", "cpu", "plan", "atol"),
    [
        ("torch_cuda", "torch_cpu", None, 1e-3),
        ("torch_cuda", "torch_cpu", HalfPlan("fp16"), 5e-2),
        ("ort_cuda", "ort_cpu", None, 1e-3),
        ("ort_cuda", "ort_cpu", WeightOnlyPlan(group_size=32), 5e-2),
    ],
)
def test_gpu_runtime_matches_its_cpu_twin(
    gpu, cpu, plan, atol, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    on_gpu, on_cpu = _pair(gpu, cpu)
    path = tmp_path / on_cpu.artifact_name
    calibration = [b for b, _ in digits_data.calibration]
    on_cpu.export(
        CompressedModel(trained_digits, plan), digits_task.latency_inputs(), calibration, path
    )
    pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])
    np.testing.assert_allclose(
        on_gpu.load(path)({"pixels": pixels}), on_cpu.load(path)({"pixels": pixels}), atol=atol
    )
