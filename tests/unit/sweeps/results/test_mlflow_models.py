"""Artifacts logged as MLflow models: pyfunc runs the very bytes that were measured."""

import hashlib
from pathlib import Path

import mlflow
import numpy as np
import pytest

from slimsweep.compressors import CompressedModel, HalfPlan, WeightOnlyPlan
from slimsweep.sweeps.results.tracking import Tracker
from slimsweep.sweeps.runtimes.artifact import read_artifact
from slimsweep.sweeps.runtimes.openvino_runtime import OpenVinoCpuConfig, OpenVinoCpuRuntime
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.runtimes.torch_program import TorchCpuConfig, TorchCpuRuntime


@pytest.mark.parametrize(
    ("runtime", "plan"),
    [
        (OrtCpuRuntime(OrtCpuConfig(name="ort_cpu")), None),
        (TorchCpuRuntime(TorchCpuConfig(name="torch_cpu")), None),
        (TorchCpuRuntime(TorchCpuConfig(name="torch_cpu")), HalfPlan("bf16")),
        (TorchCpuRuntime(TorchCpuConfig(name="torch_cpu")), WeightOnlyPlan(group_size=32)),
        (OpenVinoCpuRuntime(OpenVinoCpuConfig(name="openvino_cpu")), None),
        (
            OpenVinoCpuRuntime(OpenVinoCpuConfig(name="openvino_cpu", shape="static")),
            WeightOnlyPlan(group_size=32),
        ),
    ],
)
def test_pyfunc_loads_the_measured_artifact_and_answers_like_it(
    runtime, plan, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    path = tmp_path / runtime.artifact_name
    runtime.export(CompressedModel(trained_digits, plan), digits_task.latency_inputs(), [], path)
    predict = runtime.load(path)
    pixels = digits_data.eval[0][0]["pixels"].numpy()
    example = ({"pixels": pixels[:2]}, predict({"pixels": pixels[:2]}))
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "artifacts"), "logged")
    run_id = tracker.start_trial(0, {}, "recipe", {})
    content = read_artifact(path)
    sha256 = hashlib.sha256(content).hexdigest()
    tracker.finish_trial(run_id, {"size_bytes": 1.0}, path.name, content, sha256, {}, example)

    assert tracker.artifact(run_id, path.name) == (content, sha256)  # the stored bytes
    model_id = tracker.client.get_run(run_id).data.tags["slimsweep.model_id"]
    served = mlflow.pyfunc.load_model(f"models:/{model_id}")
    assert [spec.name for spec in served.metadata.get_input_schema().inputs] == ["pixels"]
    np.testing.assert_allclose(
        served.predict({"pixels": pixels})["output"], predict({"pixels": pixels}), rtol=0, atol=0
    )
