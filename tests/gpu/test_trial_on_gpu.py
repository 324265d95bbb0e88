"""Whole trials in-process on a GPU, no Ray: stages (fine-tuning and calibration on the GPU)
→ export → load → evaluate → measure, for the digits CNN and the MiniLM architecture."""

from pathlib import Path

import numpy as np
import pytest

from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine import trial
from slimsweep.sweeps.engine.trial import TrialRequest, TrialResult, run_trial
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.plugins import Plugins
from slimsweep.sweeps.runtimes import RUNTIMES
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.space import RecipeStep

pytestmark = pytest.mark.gpu

QUICK = LatencySettings(warmup=3, repeats=10, min_seconds=0.2, pair_rounds=2, quiet_rounds=0)
HERE = Path(__file__).parent


def _trial(
    task: dict, runtime: str, recipe: list[RecipeStep], cache: Path, **options
) -> TrialResult:
    config = RUNTIMES.get(runtime).config_type(name=runtime, latency=QUICK, **options)
    spec = WorkerSpec(task, config, Plugins(("random_bert",), str(HERE)), gpu=True)
    result = run_trial(TrialRequest(1, recipe, spec, str(cache)))
    assert result.error is None, result.error
    assert result.metrics["latency_ms_median_measured"] > 0 and result.metrics["size_bytes"] > 0
    # the teacher that distillation read was moved to the GPU: the stages computed there
    assert "cuda" in trial._prepare(spec.task_json, str(cache)).teachers
    return result


def test_a_digits_trial_distils_on_the_gpu_and_runs_fp16_cuda_graphs(baseline_cache) -> None:
    recipe = [
        RecipeStep("distill", "distill", {"steps": 60}),
        RecipeStep("quantize", "quantize", {"precision": "fp16"}),
    ]
    result = _trial(compose([])["task"], "torch_cuda", recipe, baseline_cache, mode="cuda_graphs")
    assert result.metrics["accuracy"] >= 0.9
    assert result.measured_as == {
        "mode": "cuda_graphs",
        "inputs": "host arrays, copied in and out",
        "tf32": "off",
    }


def test_a_digits_gptq_calibrated_on_the_gpu_is_measured_on_ort_cpu(baseline_cache) -> None:
    recipe = [
        RecipeStep("distill", "distill", {"steps": 30}),
        RecipeStep("quantize", "gptq", {"bits": 4, "group_size": 32}),
    ]
    result = _trial(compose([])["task"], "ort_cpu", recipe, baseline_cache)
    assert result.metrics["accuracy"] >= 0.9
    assert result.artifact_name == "model.onnx"


def test_a_minilm_architecture_trial_runs_on_the_gpu(tmp_path) -> None:
    recipe = [
        RecipeStep("depth", "drop_layers", {"keep": "0,2,4"}),
        RecipeStep("distill", "distill", {"steps": 20}),
        RecipeStep("quantize", "quantize", {"precision": "bf16"}),
    ]
    task = {"_target_": "random_bert.RandomBertTask"}
    result = _trial(task, "torch_cuda", recipe, tmp_path, mode="compile")
    assert 0.5 < result.metrics["cosine"] <= 1.0
    assert np.isfinite(result.example_outputs).all()
    assert result.input_shapes["input_ids"] == ["batch", "sequence"]
