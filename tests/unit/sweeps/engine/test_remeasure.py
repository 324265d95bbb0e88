"""The quiet phase's worker: rounds visit every candidate in turn, and a changed artifact is
refused."""

import hashlib
from pathlib import Path

import numpy as np

from slimsweep.compressors import CompressedModel
from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine.remeasure import (
    Artifact,
    RemeasureRequest,
    interleaved_runs,
    remeasure,
)
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.settings import LatencySettings


def test_rounds_interleave_the_candidates_a_b_c_a_b_c() -> None:
    calls: list[str] = []

    def recorder(name: str):
        return lambda inputs: calls.append(name)

    settings = LatencySettings(warmup=2, repeats=3, min_seconds=0, quiet_rounds=4)
    predictors = {7: recorder("a"), 3: recorder("b"), 9: recorder("c")}
    samples = interleaved_runs(predictors, {}, settings)
    timed = calls[3 * 2 :]  # after each candidate's warm-up
    # each round: one warm-up run, then `repeats` timed runs, per candidate in turn
    assert timed == (["a"] * 4 + ["b"] * 4 + ["c"] * 4) * 4
    assert {trial: len(runs) for trial, runs in samples.items()} == {7: 4, 3: 4, 9: 4}
    assert all(block.size == 3 for runs in samples.values() for block in runs)


def test_an_artifact_whose_sha256_changed_is_refused(trained_digits, digits_task, tmp_path: Path):
    runtime = OrtCpuConfig(
        name="ort_cpu", latency=LatencySettings(warmup=1, repeats=2, min_seconds=0, quiet_rounds=1)
    )
    path = tmp_path / "model.onnx"
    OrtCpuRuntime(runtime).export(
        CompressedModel(trained_digits), digits_task.latency_inputs(), [], path
    )
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    worker = WorkerSpec(compose([])["task"], runtime)
    intact = Artifact(0, "model.onnx", content, sha256)
    measured = remeasure(RemeasureRequest([intact], worker))
    assert measured.error is None and measured.latency[0].repeats == 2
    changed = Artifact(1, "model.onnx", content + b"\0", sha256)
    refused = remeasure(RemeasureRequest([intact, changed], worker))
    assert refused.latency == {}
    assert refused.error.strip().splitlines()[-1] == (
        "ValueError: the artifact of trial 1 does not match the sha256 recorded when it was "
        "measured; refusing to re-measure it"
    )
    assert np.isfinite(measured.latency[0].median_ms)
