"""torch → ONNX by the exporter the runtime config names, the batch (and any axis the task
names) left dynamic.

`torchscript` traces the module (torch.jit) and writes the graph directly: 6× to 100× faster
than `dynamo`, and its MiniLM graph runs 12 % faster in ORT (`benchmarks/overhead.md`). A
trace records the branch its example took: where the tracer warns that a Python value came
from a tensor, it may not hold for other inputs. `dynamo` (torch.export + onnxscript)
captures such models exactly or refuses them. `auto` traces; where the tracer doubts, it
keeps the trace only if the artifact reproduces torch on the check batches (the task's
calibration inputs: other values, another batch size), and exports with dynamo otherwise.
All write the same input names and one output, so every quantizer downstream reads either.
"""

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.jit import TracerWarning

from slimsweep.sweeps.errors import SlimsweepWarning
from slimsweep.sweeps.runtimes.shapes import DynamicAxes, dynamic_axes, export_dims, widened
from slimsweep.sweeps.task import Inputs

OUTPUT_NAME = "output"
OPSET = 18
CHECK_BATCHES = 2  # check batches a doubted trace must reproduce
CHECK_TOLERANCE = {"rtol": 1e-3, "atol": 1e-5}  # float export differs ~1e-7; a wrong branch, more

Exporter = Callable[[torch.nn.Module, Inputs, Path, Sequence[Inputs], DynamicAxes], None]
EXPORTERS: dict[str, Exporter] = {}


def exporter(name: str) -> Callable[[Exporter], Exporter]:
    def register(export: Exporter) -> Exporter:
        EXPORTERS[name] = export
        return export

    return register


def export_onnx(
    module: torch.nn.Module,
    example: Inputs,
    path: Path,
    how: str,
    check: Sequence[Inputs] = (),
    axes: DynamicAxes | None = None,
) -> None:
    EXPORTERS[how](module.eval(), example, path, check, axes or dynamic_axes(example))


@contextlib.contextmanager
def float_onnx(
    module: torch.nn.Module,
    example: Inputs,
    how: str,
    check: Sequence[Inputs],
    axes: DynamicAxes | None = None,
) -> Iterator[Path]:
    """The module's float ONNX export in a scratch folder, removed once the caller is done:
    what each runtime that starts from ONNX quantizes or converts."""
    with tempfile.TemporaryDirectory(prefix="slimsweep-export-") as scratch:
        path = Path(scratch) / "float.onnx"
        export_onnx(module, example, path, how, check, axes)
        yield path


def _signature(example: Inputs) -> dict[str, Any]:
    """What every exporter is given alike: the inputs by name, and the one output's name."""
    return {"kwargs": example, "input_names": list(example), "output_names": [OUTPUT_NAME]}


@exporter("dynamo")
def _dynamo(
    module: torch.nn.Module, example: Inputs, path: Path, check: Sequence[Inputs], axes: DynamicAxes
) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.onnx.export(
        module,
        (),
        str(path),
        **_signature(widened(example, axes)),
        dynamo=True,
        dynamic_shapes=export_dims(axes),
        external_data=False,
        verbose=False,
    )


@exporter("torchscript")
def _torchscript(
    module: torch.nn.Module, example: Inputs, path: Path, check: Sequence[Inputs], axes: DynamicAxes
) -> None:
    for doubt in _trace(module, example, path, axes):
        warnings.warn(
            f"TorchScript tracing may not hold beyond the example: {doubt}; "
            "runtime.exporter=auto (or dynamo) exports such a model exactly",
            SlimsweepWarning,
            stacklevel=2,
        )


@exporter("auto")
def _auto(
    module: torch.nn.Module, example: Inputs, path: Path, check: Sequence[Inputs], axes: DynamicAxes
) -> None:
    batches = [*check[:CHECK_BATCHES], *_shortened(check[:1], axes)]
    try:
        holds = not _trace(module, example, path, axes) or _reproduces(module, path, batches)
    except Exception:  # a model tracing cannot follow, or a graph ORT cannot run
        holds = False
    if not holds:
        _dynamo(module, example, path, check, axes)


def _trace(module: torch.nn.Module, example: Inputs, path: Path, axes: DynamicAxes) -> list[str]:
    """Export by tracing; returns the tracer's doubts (first sentences of its warnings)."""
    with warnings.catch_warnings(record=True) as raised:  # also the exporter's deprecation
        warnings.simplefilter("always")
        torch.onnx.export(
            module,
            (),
            str(path),
            **_signature(example),
            dynamo=False,
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    doubts = [str(w.message).split(". ")[0] for w in raised if w.category is TracerWarning]
    return list(dict.fromkeys(doubts))


def _shortened(batches: Sequence[Inputs], axes: DynamicAxes) -> list[Inputs]:
    """The batches cut to half their size along each named axis besides the batch, so that a
    trace which fixed a length (calibration batches are often padded alike) fails its check."""
    named = [(name, axis) for name, by_axis in axes.items() for axis in by_axis if axis]
    if not named:
        return []
    cut = [dict(inputs) for inputs in batches]
    for inputs in cut:
        for name, axis in named:
            inputs[name] = inputs[name].narrow(axis, 0, max(1, inputs[name].shape[axis] // 2))
    return cut


def _reproduces(module: torch.nn.Module, path: Path, check: Sequence[Inputs]) -> bool:
    """Whether the exported graph computes what the module does on the check batches (no
    batches: it cannot be shown; a graph that ORT cannot run on them raises)."""
    import onnxruntime as ort

    if not check:
        return False
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for inputs in check:
        with torch.no_grad():
            expected = module(**inputs).numpy()
        got = session.run([OUTPUT_NAME], {k: v.numpy() for k, v in inputs.items()})[0]
        if got.shape != expected.shape or not np.allclose(got, expected, **CHECK_TOLERANCE):
            return False
    return True
