"""torch → ONNX with the dynamo exporter, batch dimension left dynamic."""

import logging
from pathlib import Path

import torch

from slimsweep.sweeps.task import Inputs

OUTPUT_NAME = "output"


def export_onnx(module: torch.nn.Module, example: Inputs, path: Path) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        module.eval(),
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
