"""One suite over every registered runtime: export, load, same outputs as torch, honest refusals."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import CompressedModel
from slimsweep.compressors.plans import PRECISIONS
from slimsweep.compressors.quantize import QuantizeConfig
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime
from slimsweep.sweeps.runtimes.artifact import read_artifact


def _runtime(name: str):
    """The runtime, or a skip where this machine lacks its hardware (GPU runtimes in CI)."""
    reason = RUNTIMES.get(name).unavailable()
    if reason:
        pytest.skip(reason)
    return build_runtime(RUNTIMES.get(name).config_type(name=name))


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_fp32_artifact_reproduces_torch(
    name, trained_digits, digits_task, digits_data, tmp_path: Path
) -> None:
    runtime = _runtime(name)
    path = tmp_path / runtime.artifact_name
    runtime.export(CompressedModel(trained_digits), digits_task.latency_inputs(), [], path)
    first = hashlib.sha256(read_artifact(path)).hexdigest()
    predict = runtime.load(path)
    assert hashlib.sha256(read_artifact(path)).hexdigest() == first  # loading rewrites nothing
    for batch in (1, 28, 64):
        pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])[:batch]
        expected = trained_digits(torch.from_numpy(pixels)).detach().numpy()
        np.testing.assert_allclose(predict({"pixels": pixels}), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", RUNTIMES.names())
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_a_plan_without_a_handler_is_refused_at_export_too(
    name, precision, trained_digits, digits_task, digits_data, tmp_path
) -> None:
    runtime = _runtime(name)
    plan = QuantizeConfig(precision).plan()
    reason = runtime.handlers.refusal(plan)
    model = CompressedModel(trained_digits, plan)
    calibration = [batch for batch, _ in digits_data.calibration]
    if reason is None:
        runtime.export(
            model, digits_task.latency_inputs(), calibration, tmp_path / runtime.artifact_name
        )
        assert (tmp_path / runtime.artifact_name).stat().st_size > 0
    else:
        assert type(plan).__name__ in reason
        with pytest.raises(ValueError, match=re.escape(reason)):
            runtime.export(
                model, digits_task.latency_inputs(), [], tmp_path / runtime.artifact_name
            )
