"""The exporters: a trace that may not hold is said, and `auto` exports such a model exactly."""

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from slimsweep.sweeps.errors import SlimsweepWarning
from slimsweep.sweeps.runtimes.onnx_export import export_onnx


class ScaledByItsMax(torch.nn.Module):
    """Data-dependent: a trace keeps the example's maximum as a constant."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features / features.abs().max().item()


def _exported(how: str, tmp_path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    model = ScaledByItsMax()
    example = {"features": torch.linspace(-1, 1, 16 * 4).reshape(16, 4)}
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        export_onnx(model, example, tmp_path / "m.onnx", how)
    other = torch.linspace(-5, 3, 8 * 4).reshape(8, 4)  # another batch size, another maximum
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, {"features": other.numpy()})[0]
    said = [str(w.message) for w in raised if issubclass(w.category, SlimsweepWarning)]
    return got, model(other).numpy(), said


def test_a_trace_that_may_not_hold_is_said(tmp_path: Path) -> None:
    got, expected, said = _exported("torchscript", tmp_path)
    assert not np.allclose(got, expected)  # the example's maximum, baked in
    assert len(said) == 1 and "TorchScript tracing may not hold beyond the example" in said[0]


@pytest.mark.parametrize("how", ["auto", "dynamo"])
def test_auto_exports_a_data_dependent_model_exactly(how: str, tmp_path: Path) -> None:
    got, expected, said = _exported(how, tmp_path)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert said == []
