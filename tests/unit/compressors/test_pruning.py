"""Structured, N:M and iterative pruning against their definitions."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.finetune import TrainConfig, finetune
from slimsweep.compressors.iterative_prune import sparsity_schedule
from slimsweep.compressors.magnitude_prune import prunable_weights
from slimsweep.sweeps.engine.bench import time_runs
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.task import evaluate


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _ort_median_ms(model, digits_task, path: Path) -> float:
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=1))
    inputs = digits_task.latency_inputs()
    runtime.export(CompressedModel(model), inputs, [], path)
    predict = runtime.load(path)
    feed = {"pixels": inputs["pixels"].numpy()}
    return float(np.median(time_runs(predict, feed, warmup=10, repeats=60, min_seconds=0.3)))


def test_structured_pruning_gives_a_smaller_faster_dense_model(
    trained_digits, digits_task, digits_data, tmp_path
) -> None:
    out = STAGES.get("structured_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"ratio": 0.5}, StageContext(digits_data)
    )
    conv = out.module.features[0]
    assert conv.out_channels == 16 and out.module.classifier[3].out_features == 10
    # each hidden width halves, so every weight matrix but the first and last quarters
    assert _params(out.module) < 0.27 * _params(trained_digits)
    assert not any(bool((w == 0).all(dim=-1).any()) for w in prunable_weights(out.module)[1:2])
    pruned_ms = _ort_median_ms(out.module, digits_task, tmp_path / "p.onnx")
    dense_ms = _ort_median_ms(trained_digits, digits_task, tmp_path / "d.onnx")
    assert pruned_ms < 0.8 * dense_ms


def test_n_m_keeps_exactly_the_n_largest_of_every_m(trained_digits, digits_data) -> None:
    out = STAGES.get("n_m_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"n": 2, "m": 4}, StageContext(digits_data)
    )
    first, *rest = prunable_weights(out.module)
    assert bool((first != 0).all())  # 1x3x3 rows do not split into runs of 4: left dense
    for weight, original in zip(rest, prunable_weights(trained_digits)[1:], strict=True):
        groups = weight.detach().reshape(-1, 4)
        before = original.detach().reshape(-1, 4)
        kept = groups != 0
        assert bool((kept.sum(dim=1) == 2).all())
        assert torch.equal(groups[kept], before[kept])  # kept weights keep their values
        # in every group, each dropped weight is no larger than each kept one
        magnitude = before.abs()
        smallest_kept = torch.where(kept, magnitude, torch.inf).min(dim=1).values
        largest_dropped = torch.where(kept, -torch.inf, magnitude).max(dim=1).values
        assert bool((largest_dropped <= smallest_kept).all())


def test_cubic_schedule_reaches_the_target_pruning_hardest_first() -> None:
    steps = sparsity_schedule(0.9, 4, "cubic")
    assert steps[-1] == 0.9
    gaps = np.diff([0.0, *steps])
    assert list(gaps) == sorted(gaps, reverse=True)
    assert sparsity_schedule(0.8, 4, "linear") == [0.2, 0.4, 0.6000000000000001, 0.8]


def test_iterative_beats_one_shot_at_high_sparsity(
    trained_digits, digits_task, digits_data
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    iterative = STAGES.get("iterative_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)),
        {"sparsity": 0.98, "iterations": 4, "steps": 100},
        context,
    )
    one_shot = STAGES.get("magnitude_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"sparsity": 0.98}, context
    )
    finetune(one_shot.module, context, TrainConfig(steps=400))  # the same fine-tune budget
    for model in (iterative, one_shot):
        weights = torch.cat([w.detach().flatten() for w in prunable_weights(model.module)])
        assert abs(float((weights == 0).float().mean()) - 0.98) < 1e-4  # zeros stayed zero

    def accuracy(module: torch.nn.Module) -> float:
        return evaluate(
            digits_task,
            lambda x: module(pixels=torch.from_numpy(x["pixels"])).detach().numpy(),
            digits_data.eval,
        )

    assert accuracy(iterative.module) > accuracy(one_shot.module)


class ResidualStack(torch.nn.Module):
    def __init__(self, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))
        self.head = torch.nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + torch.relu(block(x))
        return self.head(x)


def test_drop_layers_keeps_the_chosen_blocks_and_still_exports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ResidualStack()
    kept = [model.blocks[1], model.blocks[3]]
    out = STAGES.get("drop_layers").run(CompressedModel(model), {"keep": "1,3"}, StageContext(None))
    assert list(out.module.blocks) == kept
    assert _params(out.module) == 2 * (16 * 16 + 16) + 16 * 3 + 3
    x = torch.randn(5, 16)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu"))
    runtime.export(out, {"x": x}, [], tmp_path / "m.onnx")
    expected = out.module(x).detach().numpy()
    np.testing.assert_allclose(
        runtime.load(tmp_path / "m.onnx")({"x": x.numpy()}), expected, atol=1e-5
    )


def test_drop_layers_refuses_blocks_that_do_not_exist() -> None:
    with pytest.raises(ValueError, match="has only 4 blocks"):
        STAGES.get("drop_layers").run(
            CompressedModel(ResidualStack()), {"keep": "0,4"}, StageContext(None)
        )
