"""One trial, run in-process: what it hands the driver besides its numbers."""

from pathlib import Path

import pytest

from slimsweep.sweeps.engine.trial import TrialRequest, run_trial
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.space import RecipeStep

USER_TASKS = Path(__file__).parents[1]  # tests/unit/sweeps, where user_task.py lives


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(USER_TASKS))


def test_a_costly_choice_comes_back_as_a_warning_with_the_example_and_splits(
    tmp_path: Path,
) -> None:
    """4-wide inputs in groups of 128 are 97 % padding: the trial says so."""
    config = {"_target_": "user_task.WaveRegression", "name": "wave"}
    runtime = OrtCpuConfig(
        name="ort_cpu", latency=LatencySettings(warmup=1, repeats=2, min_seconds=0)
    )
    recipe = [RecipeStep("quantize", "quantize", {"precision": "int4_weight", "group_size": 128})]
    result = run_trial(TrialRequest(0, recipe, WorkerSpec(config, runtime), str(tmp_path)))
    assert result.error is None, result.error
    assert result.warnings == [
        "a 4-wide matmul input pads to 128 for groups of 128: 97% of its packed weight is padding",
        "a 64-wide matmul input pads to 128 for groups of 128: 50% of its packed weight is padding",
    ]
    assert {k: v.shape for k, v in result.example_inputs.items()} == {"input": (2, 4)}
    assert result.example_outputs.shape == (2, 1)
    assert [(s.context, s.rows) for s in result.splits] == [("eval", 64), ("calibration", 64)]
