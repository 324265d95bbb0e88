"""GPU runtimes against their CPU twins, at tolerances scaled to the outputs' magnitude and
the precision: a wrong device, a lost constant or TF32 left on shows as an error far above
the precision's rounding."""

from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import CompressedModel, HalfPlan, WeightOnlyPlan
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime
from slimsweep.sweeps.runtimes.shapes import task_axes

pytestmark = pytest.mark.gpu

# Relative error, as a multiple of the output's largest magnitude, that each precision allows:
# fp32 reorders sums (cuDNN/cuBLAS against the CPU's kernels); halves round every layer.
RELATIVE = {None: 2e-5, "fp16": 2e-2, "bf16": 5e-2}


def _runtime(name: str, **options):
    reason = RUNTIMES.get(name).unavailable()
    if reason:
        pytest.skip(reason)
    return build_runtime(RUNTIMES.get(name).config_type(name=name, **options))


def _close(got: np.ndarray, expected: np.ndarray, precision: str | None) -> None:
    scale = float(np.abs(expected).max())
    error = float(np.abs(got - expected).max())
    assert error <= RELATIVE[precision] * scale, (error, scale, precision)


@pytest.mark.parametrize("mode", ["eager", "cuda_graphs"])
@pytest.mark.parametrize("precision", [None, "fp16", "bf16"])
def test_torch_cuda_matches_torch_cpu_on_digits(
    mode, precision, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    on_gpu = _runtime("torch_cuda", mode=mode)
    on_cpu = _runtime("torch_cpu")
    plan = HalfPlan(precision) if precision else None
    example = digits_task.latency_inputs()
    on_gpu.export(CompressedModel(trained_digits, plan), example, [], tmp_path / "gpu.pt2")
    on_cpu.export(CompressedModel(trained_digits), example, [], tmp_path / "cpu.pt2")
    pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])
    gpu = on_gpu.load(tmp_path / "gpu.pt2")
    for rows in (pixels[:1], pixels[:7], pixels):  # batch 1 and odd batches: the batch is dynamic
        _close(
            gpu({"pixels": rows}), on_cpu.load(tmp_path / "cpu.pt2")({"pixels": rows}), precision
        )


def test_tf32_is_off_unless_asked_and_changes_fp32_results(
    trained_digits, digits_task, tmp_path
) -> None:
    example = digits_task.latency_inputs()
    outputs = {}
    for tf32 in (False, True):  # False: the default
        runtime = _runtime("torch_cuda", mode="eager", **({"tf32": True} if tf32 else {}))
        runtime.export(CompressedModel(trained_digits), example, [], tmp_path / f"{tf32}.pt2")
        outputs[tf32] = runtime.load(tmp_path / f"{tf32}.pt2")(
            {k: v.numpy() for k, v in example.items()}
        )
        assert runtime.measured_as(Path("model.pt2"))["tf32"] == ("on" if tf32 else "off")
    with torch.no_grad():
        expected = trained_digits(**example).numpy()
    _close(outputs[False], expected, None)
    assert not np.array_equal(outputs[False], outputs[True])


@pytest.mark.parametrize("mode", ["eager", "compile", "cuda_graphs"])
def test_the_minilm_architecture_runs_at_batch_1_and_any_length_on_the_gpu(mode, tmp_path) -> None:
    from random_bert import RandomBertTask

    task = RandomBertTask()
    model = task.build_model()
    example = task.latency_inputs()
    runtime = _runtime("torch_cuda", mode=mode)
    path = tmp_path / "bert.pt2"
    runtime.export(
        CompressedModel(model, HalfPlan("bf16")), example, [], path, task_axes(task, example)
    )
    predict = runtime.load(path)
    rng = np.random.default_rng(0)
    for batch, length in [(1, 128), (1, 15), (4, 40)]:
        inputs = {
            "input_ids": rng.integers(1000, 30000, size=(batch, length)),
            "attention_mask": np.ones((batch, length), dtype=np.int64),
        }
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
        _close(predict(inputs), expected, "bf16")


@pytest.mark.parametrize("plan", [None, WeightOnlyPlan(group_size=32)])
def test_ort_cuda_matches_ort_cpu(plan, trained_digits, digits_task, digits_data, tmp_path) -> None:
    on_gpu, on_cpu = _runtime("ort_cuda"), _runtime("ort_cpu")
    path = tmp_path / on_cpu.artifact_name
    calibration = [b for b, _ in digits_data.calibration]
    on_cpu.export(
        CompressedModel(trained_digits, plan), digits_task.latency_inputs(), calibration, path
    )
    pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])
    _close(on_gpu.load(path)({"pixels": pixels}), on_cpu.load(path)({"pixels": pixels}), "fp16")


@pytest.mark.parametrize("mode", ["eager", "cuda_graphs"])
@pytest.mark.parametrize("precision", ["int4_weight", "int8_weight"])
def test_torch_cuda_runs_weight_only_plans_on_the_triton_kernels(
    mode, precision, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    """The packed program against the float model on the CPU: the weights' rounding (int4 at
    groups of 32, or int8 per channel) plus fp16 activations, no more."""
    from slimsweep.compressors.quantize import QuantizeConfig

    on_gpu = _runtime("torch_cuda", mode=mode)
    plan = QuantizeConfig(precision, group_size=32).plan()
    example = digits_task.latency_inputs()
    on_gpu.export(CompressedModel(trained_digits, plan), example, [], tmp_path / "gpu.pt2")
    program = torch.export.load(str(tmp_path / "gpu.pt2"))
    assert "slimsweep" in program.graph_module.code  # the packed op, not a float matmul
    pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])
    with torch.no_grad():
        expected = trained_digits(torch.from_numpy(pixels)).numpy()
    got = on_gpu.load(tmp_path / "gpu.pt2")({"pixels": pixels})
    assert float(np.abs(got - expected).max()) <= 0.1 * float(np.abs(expected).max())
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.97
