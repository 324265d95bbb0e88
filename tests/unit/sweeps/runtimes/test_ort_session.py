"""ORT artifacts: outputs match torch; quantized files are smaller and run integer ops."""

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from slimsweep.compressors import STAGES, CompressedModel, Int8Plan, StageContext, WeightOnlyPlan
from slimsweep.compressors.quantize import QuantizeConfig
from slimsweep.sweeps.runtimes.onnx_export import EXPORTERS
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.task import evaluate


def _export(model: CompressedModel, task, data, path: Path, **options) -> np.ndarray:
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", **options))
    runtime.export(model, task.latency_inputs(), [b for b, _ in data.calibration], path)
    return runtime


@pytest.fixture(scope="module")
def eval_pixels(digits_data) -> np.ndarray:
    return np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_fp32_artifact_matches_torch_for_any_batch(
    exporter, trained_digits, digits_task, digits_data, eval_pixels, tmp_path
) -> None:
    model = CompressedModel(trained_digits)
    runtime = _export(model, digits_task, digits_data, tmp_path / "m.onnx", exporter=exporter)
    predict = runtime.load(tmp_path / "m.onnx")
    for batch in (1, 7, len(eval_pixels)):
        expected = trained_digits(torch.from_numpy(eval_pixels[:batch])).detach().numpy()
        np.testing.assert_allclose(
            predict({"pixels": eval_pixels[:batch]}), expected, atol=1e-4, rtol=1e-4
        )


@pytest.mark.parametrize(
    ("precision", "ops", "max_ratio", "max_accuracy_drop"),
    [
        ("fp16", {"Cast"}, 0.52, 0.01),
        ("int8_dynamic", {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}, 0.28, 0.02),
        ("int8_static", {"QuantizeLinear", "DequantizeLinear"}, 0.28, 0.02),
        # 4-bit linears, fp32 convs (ORT has no 4-bit convolution): ~ half the file
        ("int4_weight", {"MatMulNBits"}, 0.55, 0.03),
    ],
)
@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_quantized_artifacts_are_smaller_and_stay_accurate(
    trained_digits,
    digits_task,
    digits_data,
    tmp_path,
    exporter,
    precision,
    ops,
    max_ratio,
    max_accuracy_drop,
) -> None:
    fp32 = _export(
        CompressedModel(trained_digits),
        digits_task,
        digits_data,
        tmp_path / "fp32.onnx",
        exporter=exporter,
    )
    plan = QuantizeConfig(precision, per_channel=True, calibration="minmax").plan()
    quant = _export(
        CompressedModel(trained_digits, plan),
        digits_task,
        digits_data,
        tmp_path / "q.onnx",
        exporter=exporter,
    )
    ratio = (tmp_path / "q.onnx").stat().st_size / (tmp_path / "fp32.onnx").stat().st_size
    assert ratio <= max_ratio
    assert ops <= {node.op_type for node in onnx.load(tmp_path / "q.onnx").graph.node}
    accuracy_fp32 = evaluate(digits_task, fp32.load(tmp_path / "fp32.onnx"), digits_data.eval)
    accuracy_quant = evaluate(digits_task, quant.load(tmp_path / "q.onnx"), digits_data.eval)
    assert accuracy_quant >= accuracy_fp32 - max_accuracy_drop


@pytest.mark.parametrize(
    ("precision", "max_relative_error"),
    [("fp16", 0.005), ("int8_dynamic", 0.05), ("int8_static", 0.05), ("int4_weight", 0.1)],
)
def test_quantized_outputs_match_torch_within_tolerance(
    trained_digits, digits_task, digits_data, eval_pixels, tmp_path, precision, max_relative_error
) -> None:
    plan = QuantizeConfig(precision, group_size=32).plan()
    runtime = _export(
        CompressedModel(trained_digits, plan), digits_task, digits_data, tmp_path / "q.onnx"
    )
    logits = runtime.load(tmp_path / "q.onnx")({"pixels": eval_pixels})
    expected = trained_digits(torch.from_numpy(eval_pixels)).detach().numpy()
    relative_error = np.linalg.norm(logits - expected) / np.linalg.norm(expected)
    assert relative_error <= max_relative_error
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.97


def test_int4_groups_shrink_the_linear_weights_eightfold(
    trained_digits, digits_task, digits_data, tmp_path
) -> None:
    plan = WeightOnlyPlan(group_size=32)
    _export(CompressedModel(trained_digits, plan), digits_task, digits_data, tmp_path / "q.onnx")
    graph = onnx.load(tmp_path / "q.onnx").graph
    packed = {i.name: i for i in graph.initializer}
    for node in (n for n in graph.node if n.op_type == "MatMulNBits"):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert (attrs["bits"], attrs["block_size"]) == (4, 32)
        weight_bytes = numpy_helper.to_array(packed[node.input[1]]).nbytes
        assert weight_bytes == attrs["N"] * attrs["K"] // 2  # two weights a byte: 1/8 of fp32


@pytest.mark.parametrize("calibration", ["minmax", "percentile", "entropy"])
def test_every_static_calibration_runs(
    trained_digits, digits_task, digits_data, tmp_path, calibration
) -> None:
    plan = Int8Plan(per_channel=False, calibration=calibration)
    runtime = _export(
        CompressedModel(trained_digits, plan), digits_task, digits_data, tmp_path / "q.onnx"
    )
    assert evaluate(digits_task, runtime.load(tmp_path / "q.onnx"), digits_data.eval) > 0.9


def test_pruned_model_is_stored_sparsely_with_identical_outputs(
    trained_digits, digits_task, digits_data, eval_pixels, tmp_path
) -> None:
    pruned = STAGES.get("magnitude_prune").run(
        CompressedModel(copy.deepcopy(trained_digits)), {"sparsity": 0.9}, StageContext(digits_data)
    )
    dense = _export(
        pruned, digits_task, digits_data, tmp_path / "dense.onnx", compact_weights=False
    )
    sparse = _export(
        pruned, digits_task, digits_data, tmp_path / "sparse.onnx", compact_weights=True
    )
    dense_size = (tmp_path / "dense.onnx").stat().st_size
    sparse_size = (tmp_path / "sparse.onnx").stat().st_size
    # 10 % of weights kept: each a 4-byte value, plus one mask bit per weight (a bitmask beats
    # 4-byte COO indices here): ~14 % of the dense weights, plus biases, graph and decoders
    assert sparse_size < 0.17 * dense_size
    still_dense = {t.name for t in onnx.load(tmp_path / "sparse.onnx").graph.initializer}
    assert not {"features.5.weight", "classifier.1.weight", "classifier.3.weight"} & still_dense
    inputs = {"pixels": eval_pixels}
    np.testing.assert_array_equal(
        sparse.load(tmp_path / "sparse.onnx")(inputs), dense.load(tmp_path / "dense.onnx")(inputs)
    )
