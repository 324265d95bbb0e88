"""Distillation, low-rank factorisation, weight sharing and fusion against their
definitions."""

import copy

import numpy as np
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.huffman import code_lengths, coded_bytes, decode, encode
from slimsweep.compressors.low_rank import factorise
from slimsweep.compressors.magnitude_prune import prunable_weights
from slimsweep.sweeps.task import evaluate
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNN


def _accuracy(module, digits_task, digits_data) -> float:
    def predict(x: dict) -> np.ndarray:
        with torch.no_grad():
            return module(pixels=torch.from_numpy(x["pixels"])).numpy()

    return evaluate(digits_task, predict, digits_data.eval)


def test_distilled_student_beats_the_same_student_on_hard_labels(
    trained_digits, digits_task, digits_data
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    accuracies = {}
    for alpha in (0.0, 0.9):
        torch.manual_seed(0)
        student = DigitsCNN(width=2)
        params = {"steps": 300, "learning_rate": 0.003, "alpha": alpha}
        STAGES.get("distill").run(CompressedModel(student), params, context)
        accuracies[alpha] = _accuracy(student, digits_task, digits_data)
    assert accuracies[0.9] > accuracies[0.0] + 0.01


def test_feature_distillation_projects_a_narrower_student(
    trained_digits, digits_task, digits_data
) -> None:
    torch.manual_seed(0)
    student = DigitsCNN(width=8)
    params = {
        "steps": 150,
        "learning_rate": 0.003,
        "features": "features.2, classifier.1",
        "feature_weight": 1.0,
    }
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    STAGES.get("distill").run(CompressedModel(student), params, context)
    assert _accuracy(student, digits_task, digits_data) > 0.8  # it trained through the hooks
    assert not student.features[2]._forward_hooks  # and left no hooks behind


def test_recovery_fine_tuning_keeps_every_pruned_weight_at_zero(
    trained_digits, digits_task, digits_data
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    pruned = STAGES.get("magnitude_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"sparsity": 0.7}, context
    )
    before = [w.detach().clone() for w in prunable_weights(pruned.module)]
    STAGES.get("distill").run(pruned, {"steps": 30, "learning_rate": 0.001}, context)
    for weight, original in zip(prunable_weights(pruned.module), before, strict=True):
        assert bool((weight[original == 0] == 0).all())  # every pruned position, not just some
        assert not torch.equal(weight, original)  # while the kept weights did train


@pytest.mark.parametrize(("mode", "keep"), [("rank", 0.25), ("energy", 0.8)])
def test_low_rank_error_is_the_discarded_singular_values(
    trained_digits, digits_data, mode, keep
) -> None:
    weight = trained_digits.classifier[1].weight.detach()
    singular = torch.linalg.svdvals(weight.double())
    out = STAGES.get("low_rank").run(
        CompressedModel(copy.deepcopy(trained_digits)),
        {"mode": mode, "keep": keep},
        StageContext(digits_data),
    )
    first, second = out.module.classifier[1]
    rank = first.out_features
    if mode == "rank":
        assert rank == round(0.25 * min(weight.shape))
    else:
        energy = (singular[:rank] ** 2).sum() / (singular**2).sum()
        assert energy >= 0.8 > (singular[: rank - 1] ** 2).sum() / (singular**2).sum()
    product = (second.weight @ first.weight).double()
    error = torch.linalg.matrix_norm(product - weight.double())
    assert float(error) == pytest.approx(float(singular[rank:].pow(2).sum().sqrt()), rel=1e-4)
    before = sum(p.numel() for p in trained_digits.parameters())
    assert sum(p.numel() for p in out.module.parameters()) < before


def test_factors_multiply_back_exactly_at_full_rank() -> None:
    weight = torch.randn(20, 30)
    u, v = factorise(weight, 20)
    torch.testing.assert_close(u @ v, weight, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bits", [2, 4])
def test_weight_sharing_leaves_at_most_2_to_the_b_values(trained_digits, digits_data, bits) -> None:
    pruned = STAGES.get("magnitude_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"sparsity": 0.5}, StageContext(digits_data)
    )
    zeros = [w == 0 for w in prunable_weights(pruned.module)]
    out = STAGES.get("weight_share").run(pruned, {"bits": bits}, StageContext(digits_data))
    for weight, pruned_here in zip(prunable_weights(out.module), zeros, strict=True):
        assert len(torch.unique(weight)) <= 2**bits
        assert bool((weight[pruned_here] == 0).all())  # every pruned position stayed zero
    assert out.metrics["huffman_index_bytes"] <= out.metrics["packed_index_bytes"]


@pytest.mark.parametrize(
    ("tensors", "shared"), [("all", {"0", "1"}), ("embeddings", {"0"}), ("layers", {"1"})]
)
def test_weight_sharing_reaches_the_tensors_asked_for(tensors: str, shared: set[str]) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(300, 16), torch.nn.Linear(16, 16))
    out = STAGES.get("weight_share").run(
        CompressedModel(copy.deepcopy(model)), {"bits": 3, "tensors": tensors}, StageContext(None)
    )
    for name, module in out.module.named_children():
        distinct = len(torch.unique(module.weight))
        assert (distinct <= 8) == (name in shared), (name, distinct)
    with pytest.raises(ValueError, match="no tensors to share"):
        STAGES.get("weight_share").run(
            CompressedModel(torch.nn.Linear(4, 4)), {"tensors": "embeddings"}, StageContext(None)
        )


def test_huffman_round_trips_and_never_beats_entropy() -> None:
    symbols = np.random.default_rng(0).choice(
        8, size=5000, p=[0.5, 0.2, 0.1, 0.1, 0.04, 0.03, 0.02, 0.01]
    )
    stream, lengths = encode(symbols)
    np.testing.assert_array_equal(decode(stream, lengths, len(symbols)), symbols)
    frequencies = np.bincount(symbols) / len(symbols)
    entropy_bits = -(frequencies * np.log2(frequencies)).sum() * len(symbols)
    assert entropy_bits / 8 <= len(stream) <= entropy_bits / 8 + len(symbols) / 8
    assert coded_bytes(symbols, 8) == len(stream) + 8
    assert code_lengths(np.zeros(10, int)) == {0: 1}


def test_fusion_folds_batch_norm_exactly() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 16),
        torch.nn.BatchNorm1d(16),
    )
    model.train()
    for _ in range(3):  # give the norms real running statistics
        model(torch.randn(16, 3, 8, 8))
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    expected = model(x)
    out = STAGES.get("fuse").run(CompressedModel(model), {}, StageContext(None))
    assert out.metrics["fused_layers"] == 2
    assert not any(
        isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in out.module.modules()
    )
    torch.testing.assert_close(out.module(x), expected, atol=1e-5, rtol=1e-4)
