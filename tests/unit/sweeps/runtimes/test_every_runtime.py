"""One suite over every registered runtime: export, load, same outputs as torch, honest refusals."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import CompressedModel, QuantizationPlan
from slimsweep.compressors.quantize import PRECISIONS
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime


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
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    predict = runtime.load(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first  # loading does not rewrite it
    for batch in (1, 28, 64):
        pixels = np.concatenate([b["pixels"].numpy() for b, _ in digits_data.eval])[:batch]
        expected = trained_digits(torch.from_numpy(pixels)).detach().numpy()
        np.testing.assert_allclose(predict({"pixels": pixels}), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", RUNTIMES.names())
@pytest.mark.parametrize("precision", [p for p in PRECISIONS if p != "fp32"])
def test_a_refused_precision_is_refused_at_export_too(
    name, precision, trained_digits, digits_task, digits_data, tmp_path
) -> None:
    runtime = _runtime(name)
    reason = runtime.refusal("quantize", "precision", precision)
    model = CompressedModel(trained_digits, QuantizationPlan(precision))
    calibration = [batch for batch, _ in digits_data.calibration]
    if reason is None:
        runtime.export(
            model, digits_task.latency_inputs(), calibration, tmp_path / runtime.artifact_name
        )
        assert (tmp_path / runtime.artifact_name).stat().st_size > 0
    else:
        assert name in reason or "ort_cpu" in reason
        with pytest.raises(ValueError):
            runtime.export(
                model, digits_task.latency_inputs(), [], tmp_path / runtime.artifact_name
            )
