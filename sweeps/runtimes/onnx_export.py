"""torch → ONNX, batch dimension left dynamic, by the exporter the runtime config names.

`torchscript` traces the module (torch.jit) and writes the graph directly: 20× or more faster
than `dynamo` on small models, where export is most of a trial. A trace records the branch
its example took: where the tracer warns that a Python value came from a tensor (control
flow that depends on the data), it may not hold for other inputs. `dynamo` (torch.export +
onnxscript) captures such models exactly or refuses them. `auto` traces, and exports again
with dynamo whenever the tracer warns. All write the same input names and one output, so
every quantizer downstream reads either; `benchmarks/overhead.md` compares them.
"""

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.jit import TracerWarning

from slimsweep.sweeps.errors import SlimsweepWarning
from slimsweep.sweeps.task import Inputs

OUTPUT_NAME = "output"
OPSET = 18

Exporter = Callable[[torch.nn.Module, Inputs, Path], None]
EXPORTERS: dict[str, Exporter] = {}


def exporter(name: str) -> Callable[[Exporter], Exporter]:
    def register(export: Exporter) -> Exporter:
        EXPORTERS[name] = export
        return export

    return register


def export_onnx(module: torch.nn.Module, example: Inputs, path: Path, how: str) -> None:
    EXPORTERS[how](module.eval(), example, path)


@exporter("dynamo")
def _dynamo(module: torch.nn.Module, example: Inputs, path: Path) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        module,
        (),
        str(path),
        kwargs=example,
        dynamo=True,
        input_names=list(example),
        output_names=[OUTPUT_NAME],
        dynamic_shapes={name: {0: batch} for name in example},
        external_data=False,
        verbose=False,
    )


@exporter("torchscript")
def _torchscript(module: torch.nn.Module, example: Inputs, path: Path) -> None:
    for doubt in _trace(module, example, path):
        warnings.warn(
            f"TorchScript tracing may not hold beyond the example: {doubt}; "
            "runtime.exporter=dynamo (or auto) exports such a model exactly",
            SlimsweepWarning,
            stacklevel=2,
        )


@exporter("auto")
def _auto(module: torch.nn.Module, example: Inputs, path: Path) -> None:
    if _trace(module, example, path):
        _dynamo(module, example, path)


def _trace(module: torch.nn.Module, example: Inputs, path: Path) -> list[str]:
    """Export by tracing; returns the tracer's doubts (first lines of its TracerWarnings)."""
    with warnings.catch_warnings(record=True) as raised:  # also the exporter's deprecation
        warnings.simplefilter("always")
        torch.onnx.export(
            module,
            (),
            str(path),
            kwargs=example,
            dynamo=False,
            input_names=list(example),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in example},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    doubts = [str(w.message).split(". ")[0] for w in raised if w.category is TracerWarning]
    return list(dict.fromkeys(doubts))
