"""runtime=openvino_cpu against its promises: the IR computes what torch computes, a stage's
codes land in the IR bit for bit, NNCF's INT8 keeps MiniLM's fidelity and uses the
calibration split, a static artifact scores at its shape, a trial's artifact is compiled as
configured, and each refusal names what to change."""

import copy
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="the openvino extra is not installed")

from slimsweep.compressors import STAGES, CompressedModel, StageContext  # noqa: E402
from slimsweep.compressors.plans import (  # noqa: E402
    HalfPlan,
    Int8Plan,
    Int8WeightOnlyPlan,
    WeightOnlyPlan,
)
from slimsweep.kernels.packing import unpack_nibbles  # noqa: E402
from slimsweep.sweeps.engine.trial import TrialRequest, run_trial  # noqa: E402
from slimsweep.sweeps.engine.worker import WorkerSpec  # noqa: E402
from slimsweep.sweeps.runtimes import openvino_plans, openvino_runtime  # noqa: E402
from slimsweep.sweeps.runtimes.artifact import (  # noqa: E402
    artifact_size,
    read_artifact,
    write_artifact,
)
from slimsweep.sweeps.runtimes.openvino_runtime import (  # noqa: E402
    OpenVinoCpuConfig,
    OpenVinoCpuRuntime,
    compile_options,
)
from slimsweep.sweeps.settings import LatencySettings  # noqa: E402
from slimsweep.sweeps.space import RecipeStep  # noqa: E402
from tests.conftest import DIGITS_CONFIG  # noqa: E402
from tests.grids import assert_carries_exactly  # noqa: E402


def _runtime(**settings) -> OpenVinoCpuRuntime:
    return OpenVinoCpuRuntime(OpenVinoCpuConfig(name="openvino_cpu", **settings))


def _pixels(digits_data, rows: int) -> np.ndarray:
    return np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])[:rows]


def _grids(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(codes [out, in padded], float scales [out, groups], zero points [out, groups]) of
    every grouped 4-bit weight in the IR, read back from the saved files."""
    import openvino as ov

    def constant(output) -> np.ndarray:
        node = output.get_node()
        while node.get_type_name() == "Convert":
            node = node.input_value(0).get_node()
        assert node.get_type_name() == "Constant"
        shape = tuple(node.get_output_shape(0))
        data = node.get_data()
        if node.get_element_type() == ov.Type.u4:
            count = int(np.prod(shape))
            return unpack_nibbles(data.reshape(1, -1), count).reshape(shape)
        return data.reshape(shape)

    grids = []
    for op in ov.Core().read_model(str(path)).get_ordered_ops():
        if op.get_type_name() != "Multiply":
            continue
        centred = op.input_value(0).get_node()
        if centred.get_type_name() != "Subtract":
            continue
        codes = constant(centred.input_value(0))
        zeros = constant(centred.input_value(1))
        scales = constant(op.input_value(1))
        out, groups, size = codes.shape
        grids.append(
            (codes.reshape(out, groups * size), scales.reshape(out, groups), zeros[..., 0])
        )
    return grids


def test_fp32_ir_reproduces_torch_at_every_batch(trained_digits, digits_data, tmp_path) -> None:
    runtime = _runtime()
    path = tmp_path / runtime.artifact_name
    runtime.export(CompressedModel(trained_digits), {"pixels": torch.zeros(32, 1, 8, 8)}, [], path)
    assert artifact_size(path) == path.stat().st_size + path.with_suffix(".bin").stat().st_size
    predict = runtime.load(path)
    for batch in (1, 7, 64):
        pixels = _pixels(digits_data, batch)
        expected = trained_digits(torch.from_numpy(pixels)).detach().numpy()
        np.testing.assert_allclose(predict({"pixels": pixels}), expected, atol=1e-4, rtol=1e-4)


def test_a_static_artifact_takes_one_shape_and_scores_as_the_dynamic_one(
    trained_digits, digits_data, tmp_path
) -> None:
    example = {"pixels": torch.zeros(32, 1, 8, 8)}
    outputs = {}
    for shape in ("dynamic", "static"):
        runtime = _runtime(shape=shape)
        path = tmp_path / shape / runtime.artifact_name
        path.parent.mkdir()
        runtime.export(CompressedModel(trained_digits), example, [], path)
        compiled = runtime.load(path)
        outputs[shape] = compiled({"pixels": _pixels(digits_data, 70)})  # 32 + 32 + 6 rows
        assert runtime.artifact_axes({"pixels": {0: "batch"}}) == (
            {} if shape == "static" else {"pixels": {0: "batch"}}
        )
    np.testing.assert_allclose(outputs["static"], outputs["dynamic"], atol=1e-5, rtol=1e-5)
    for other in ((1, 1, 9, 8), (1, 1, 7, 8)):  # no axis but the batch is declared dynamic
        with pytest.raises(ValueError, match="runtime.shape=dynamic"):
            compiled({"pixels": np.zeros(other, np.float32)})


@pytest.mark.parametrize("stage", ["gptq", "awq"])
def test_the_ir_holds_exactly_the_codes_the_stage_chose(
    stage, trained_digits, digits_task, digits_data, tmp_path
) -> None:
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    out = STAGES.get(stage).run(CompressedModel(copy.deepcopy(trained_digits)), {}, context)
    plan = out.quantization
    assert isinstance(plan, WeightOnlyPlan) and len(plan.codes) == 2
    path = tmp_path / "model.xml"
    _runtime().export(out, {"pixels": torch.zeros(32, 1, 8, 8)}, [], path)
    grids = _grids(path)
    assert_carries_exactly(grids, plan)
    # and the compiled IR computes with exactly those weights (to OpenVINO's int8 activations)
    pixels = _pixels(digits_data, 64)
    with torch.no_grad():
        reference = out.module(torch.from_numpy(pixels)).numpy()
    got = _runtime().load(path)({"pixels": pixels})
    assert np.mean(got.argmax(1) == reference.argmax(1)) > 0.95

    with torch.no_grad():  # a weight changed after the stage ran: refused, not rounded again
        [m for m in out.module.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(1.01)
    with pytest.raises(ValueError, match="refusing to round it again"):
        _runtime().export(out, {"pixels": torch.zeros(32, 1, 8, 8)}, [], tmp_path / "lost.xml")


def test_int8_weights_are_stored_as_int8_with_a_scale_per_channel(
    trained_digits, digits_data, tmp_path
) -> None:
    runtime = _runtime()
    sizes = {}
    for name, plan in (("float", None), ("int8", Int8WeightOnlyPlan())):
        path = tmp_path / name / "model.xml"
        path.parent.mkdir()
        runtime.export(
            CompressedModel(trained_digits, plan), {"pixels": torch.zeros(32, 1, 8, 8)}, [], path
        )
        sizes[name] = artifact_size(path)
        pixels = _pixels(digits_data, 64)
        accuracy = runtime.load(path)({"pixels": pixels}).argmax(1)
        expected = trained_digits(torch.from_numpy(pixels)).argmax(1).numpy()
        assert np.mean(accuracy == expected) > 0.95
    linear_bytes = sum(
        m.weight.numel() * 3 for m in trained_digits.modules() if isinstance(m, torch.nn.Linear)
    )
    assert sizes["float"] - sizes["int8"] > 0.9 * linear_bytes  # 4 bytes → 1 per weight


def test_a_trial_calibrates_on_the_calibration_split_and_compiles_as_configured(
    digits_task, digits_data, baseline_cache, trained_digits, tmp_path
) -> None:
    """The trial's artifact is NNCF's INT8 of the calibration split (byte for byte), and it
    is compiled with the trial's threads, the latency hint and one stream."""
    config = OpenVinoCpuConfig(
        name="openvino_cpu", threads=2, latency=LatencySettings(warmup=1, repeats=2, min_seconds=0)
    )
    recipe = [RecipeStep("quantize", "quantize", {"precision": "int8_static"})]
    spec = WorkerSpec(DIGITS_CONFIG, config)
    result = run_trial(TrialRequest(0, recipe, spec, str(baseline_cache)))
    assert result.error is None, result.error
    assert result.measured_as["INFERENCE_NUM_THREADS"] == "2"
    assert result.measured_as["PERFORMANCE_HINT"] == "LATENCY"
    assert result.measured_as["NUM_STREAMS"] == "1"
    assert result.metrics["size_bytes"] < 0.4 * artifact_size_of_float(trained_digits, tmp_path)

    by_hand = {}
    for split in ("calibration", "eval"):
        path = tmp_path / split / "model.xml"
        path.parent.mkdir()
        batches = [inputs for inputs, _ in getattr(digits_data, split)]
        _runtime(threads=2).export(
            CompressedModel(trained_digits, Int8Plan(True, False, "minmax")),
            digits_task.latency_inputs(),
            batches,
            path,
        )
        by_hand[split] = path.with_suffix(".bin").read_bytes()  # the XML's names vary
    path = tmp_path / "trial" / "model.xml"
    path.parent.mkdir()
    write_artifact(result.artifact, path)
    assert by_hand["calibration"] != by_hand["eval"]  # the split matters...
    assert path.with_suffix(".bin").read_bytes() == by_hand["calibration"]  # ...the trial's
    compiled = _runtime(threads=2).load(path)
    assert compiled.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert str(compiled.compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"
    assert int(compiled.compiled.get_property("NUM_STREAMS")) == 1


def artifact_size_of_float(model: torch.nn.Module, folder: Path) -> int:
    path = folder / "float" / "model.xml"
    path.parent.mkdir()
    _runtime().export(CompressedModel(model), {"pixels": torch.zeros(32, 1, 8, 8)}, [], path)
    return artifact_size(path)


@pytest.mark.parametrize(
    ("plan", "key"),
    [
        (Int8Plan(True, False, None), "precision=int8_static"),
        (Int8Plan(True, False, "entropy"), "calibration=minmax"),
    ],
)
def test_each_refusal_names_the_key_to_change(plan, key) -> None:
    reason = _runtime().handlers.refusal(plan)
    assert reason is not None and key in reason


def test_bf16_is_refused_on_a_cpu_without_it_and_fp16_runs_as_the_loading_cpu_can(
    monkeypatch, trained_digits, tmp_path
) -> None:
    """The CPU's capabilities are the hardware's answer, asked where the IR is compiled."""
    import openvino as ov

    path = tmp_path / "model.xml"
    half = CompressedModel(trained_digits, HalfPlan("fp16"))
    _runtime().export(half, {"pixels": torch.zeros(32, 1, 8, 8)}, [], path)
    ir = ov.Core().read_model(str(path))
    for capabilities, precision in ((("FP32", "INT8"), "f32"), (("FP32", "FP16"), "f16")):
        monkeypatch.setattr(openvino_runtime, "cpu_capabilities", lambda c=capabilities: c)
        assert compile_options(ir, 1)["INFERENCE_PRECISION_HINT"] == precision
    monkeypatch.setattr(openvino_plans, "cpu_capabilities", lambda: ("FP32", "INT8"))
    reason = _runtime().handlers.refusal(HalfPlan("bf16"))
    assert reason is not None and "choose fp16" in reason
    assert _runtime().handlers.refusal(HalfPlan("fp16")) is None


def test_a_blob_round_trips_and_refuses_one_without_its_files(tmp_path) -> None:
    main = tmp_path / "a" / "model.xml"
    main.parent.mkdir()
    main.write_bytes(b"<net/>")
    main.with_suffix(".bin").write_bytes(b"\0" * 10)
    blob = read_artifact(main)
    assert read_artifact(main) == blob  # the same files give the same blob
    again = tmp_path / "b" / "model.xml"
    again.parent.mkdir()
    assert [p.name for p in write_artifact(blob, again)] == ["model.xml", "model.bin"]
    assert again.with_suffix(".bin").read_bytes() == b"\0" * 10
    with pytest.raises(ValueError, match=re.escape("expected the files")):
        write_artifact(read_artifact(tmp_path / "b" / "model.xml")[:512] + b"\0" * 1024, again)


def test_a_machine_without_openvino_is_refused_before_launch(monkeypatch) -> None:
    from slimsweep.sweeps.config import load_settings
    from slimsweep.sweeps.errors import ConfigError

    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` fails, as uninstalled
    openvino_plans.openvino_unavailable.cache_clear()
    try:
        with pytest.raises(ConfigError, match="runtime=openvino_cpu cannot run here: the "):
            load_settings(["space=digits_nas"])
    finally:
        openvino_plans.openvino_unavailable.cache_clear()
