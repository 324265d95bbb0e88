"""The exporters: a trace that may not hold is said; `auto` keeps a doubted trace only when
it reproduces torch on the check batches, and exports with dynamo otherwise."""

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from slimsweep.sweeps.errors import SlimsweepWarning
from slimsweep.sweeps.runtimes.onnx_export import export_onnx

EXAMPLE = {"features": torch.linspace(-1, 1, 16 * 4).reshape(16, 4)}
CHECK = [{"features": torch.linspace(-5, 3, 8 * 4).reshape(8, 4)}]  # other values and batch


class ScaledByItsMax(torch.nn.Module):
    """Data-dependent: a trace keeps the example's maximum as a constant."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features / features.abs().max().item()


class PadsNarrowInputs(torch.nn.Module):
    """The tracer doubts a comparison of shapes, which holds for every batch size."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if (missing := 8 - features.shape[-1]) > 0:
            features = torch.nn.functional.pad(features, (0, missing))
        return features * 2


class BatchBakedIn(torch.nn.Module):
    """A trace keeps the example's batch size: ORT refuses it on any other batch."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.zeros(int(features.shape[0]), 3) + features[:, :3]


def _export(model: torch.nn.Module, how: str, path: Path, check=CHECK) -> list[str]:
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        export_onnx(model, EXAMPLE, path, how, check)
    return [str(w.message) for w in raised if issubclass(w.category, SlimsweepWarning)]


def _error(model: torch.nn.Module, path: Path) -> float:
    session = ort.InferenceSession(str(path))
    got = session.run(None, {"features": CHECK[0]["features"].numpy()})[0]
    return float(np.abs(got - model(**CHECK[0]).numpy()).max())


def test_a_trace_that_may_not_hold_is_said(tmp_path: Path) -> None:
    said = _export(ScaledByItsMax(), "torchscript", tmp_path / "m.onnx")
    assert _error(ScaledByItsMax(), tmp_path / "m.onnx") > 0.1  # the example's maximum
    assert len(said) == 1 and "TorchScript tracing may not hold beyond the example" in said[0]


@pytest.mark.parametrize(("how", "check"), [("auto", CHECK), ("auto", []), ("dynamo", CHECK)])
def test_a_data_dependent_model_is_exported_exactly(how: str, check, tmp_path: Path) -> None:
    """auto: the trace fails the check batches (or there are none to show it holds)."""
    assert _export(ScaledByItsMax(), how, tmp_path / "m.onnx", check) == []
    assert _error(ScaledByItsMax(), tmp_path / "m.onnx") < 1e-6


def test_auto_hands_a_trace_that_onnx_runtime_cannot_run_to_dynamo(tmp_path: Path) -> None:
    """Not an error at export: dynamo gets its turn (it too fixes this batch size, which the
    trial's evaluation then reports)."""
    _export(BatchBakedIn(), "auto", tmp_path / "auto.onnx")
    _export(BatchBakedIn(), "dynamo", tmp_path / "dynamo.onnx")
    assert (tmp_path / "auto.onnx").read_bytes() == (tmp_path / "dynamo.onnx").read_bytes()


def test_auto_keeps_a_doubted_trace_that_reproduces_torch(tmp_path: Path) -> None:
    _export(PadsNarrowInputs(), "auto", tmp_path / "auto.onnx")
    _export(PadsNarrowInputs(), "torchscript", tmp_path / "traced.onnx")
    assert (tmp_path / "auto.onnx").read_bytes() == (tmp_path / "traced.onnx").read_bytes()
    assert _error(PadsNarrowInputs(), tmp_path / "auto.onnx") < 1e-6


class AveragesOverPaddedLength(torch.nn.Module):
    """A trace keeps the example's length as a constant: right only at that length."""

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (tokens * mask).sum(1) / float(mask.sum(1).max())  # the longest row


def test_auto_checks_a_doubted_trace_at_other_lengths_of_a_named_axis(tmp_path: Path) -> None:
    """Calibration batches padded alike cannot show a baked-in length; a shortened copy can."""
    tokens = torch.linspace(-1, 1, 4 * 32).reshape(4, 32)
    padded = [{"tokens": tokens, "mask": torch.ones(4, 32)}]  # check batches, all at 32
    axes = {"tokens": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}}
    model = AveragesOverPaddedLength()
    export_onnx(model, padded[0], tmp_path / "m.onnx", "auto", padded, axes)
    short = {"tokens": tokens[:, :7].numpy(), "mask": np.ones((4, 7), dtype=np.float32)}
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, short)[0]
    expected = model(**{k: torch.from_numpy(v) for k, v in short.items()}).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
