"""Artifacts exported from the task's batch-1, full-length latency batch take any batch and
any sentence length, on every runtime: a deployment feeds what it has, unpadded."""

import numpy as np
import pytest
import torch

from slimsweep.compressors import CompressedModel
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime
from slimsweep.sweeps.runtimes.shapes import dynamic_axes, task_axes
from slimsweep.sweeps.tasks.minilm import MiniLMTask


@pytest.fixture(scope="module")
def minilm() -> tuple[MiniLMTask, torch.nn.Module]:
    task = MiniLMTask()
    return task, task.build_model().eval()


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("torch_cpu", {}),
        ("ort_cpu", {"exporter": "torchscript"}),
        ("ort_cpu", {"exporter": "dynamo"}),
    ],
)
def test_a_batch_1_export_runs_other_batches_and_lengths(minilm, name, options, tmp_path) -> None:
    task, model = minilm
    example = task.latency_inputs()
    assert example["input_ids"].shape == (1, 128)
    runtime = build_runtime(RUNTIMES.get(name).config_type(name=name, **options))
    path = tmp_path / runtime.artifact_name
    runtime.export(CompressedModel(model), example, [], path, task_axes(task, example))
    predict = runtime.load(path)
    rng = np.random.default_rng(0)
    for batch, length in [(3, 15), (1, 128), (2, 40)]:
        ids = rng.integers(1000, 20000, size=(batch, length))
        mask = np.ones_like(ids)
        mask[0, length // 2 :] = 0  # one padded row
        inputs = {"input_ids": ids, "attention_mask": mask}
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
        got = predict(inputs)
        assert got.shape == (batch, 384)
        np.testing.assert_allclose(got, expected, atol=1e-4)


class FixedWidth(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 2, 4).sum(-1)  # only 8 columns fit


def test_an_axis_the_model_fixes_is_refused_naming_it(tmp_path) -> None:
    example = {"x": torch.randn(1, 8)}
    runtime = build_runtime(RUNTIMES.get("torch_cpu").config_type(name="torch_cpu"))
    axes = dynamic_axes(example, {"x": {1: "width"}})
    with pytest.raises(ValueError, match=r"axis 1 \(width\) of x, fixed to 8"):
        runtime.export(CompressedModel(FixedWidth()), example, [], tmp_path / "m.pt2", axes)


def test_an_axis_of_an_input_the_model_does_not_take_is_refused() -> None:
    with pytest.raises(ValueError, match="names the input 'ids'; the model takes x"):
        dynamic_axes({"x": torch.zeros(1, 8)}, {"ids": {1: "sequence"}})
