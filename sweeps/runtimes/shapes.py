"""Which input axes an artifact leaves dynamic, shared by every exporter.

Axis 0 of every input is the batch. A task names its other variable axes (a tokenised
sentence's length) with the optional `dynamic_axes()` member; an artifact fixed to the
padded length would make every deployment pad to it.
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch.fx.experimental.symbolic_shapes import is_concrete_int

from slimsweep.sweeps.task import Inputs

DynamicAxes = dict[str, dict[int, str]]  # input name → {axis: the axis's name}
BATCH = "batch"


def dynamic_axes(
    example: Inputs, declared: Mapping[str, Mapping[int, str]] | None = None
) -> DynamicAxes:
    """The batch axis of every input, plus the axes the task declares."""
    axes = {name: {0: BATCH} for name in example}
    for name, named in (declared or {}).items():
        if name not in example:
            raise ValueError(
                f"dynamic_axes() names the input {name!r}; the model takes {', '.join(example)}"
            )
        axes[name].update({int(axis): str(label) for axis, label in named.items()})
    return axes


def task_axes(task: object, example: Inputs) -> DynamicAxes:
    declare = getattr(task, "dynamic_axes", None)
    return dynamic_axes(example, declare() if callable(declare) else None)


def widened(example: Inputs, axes: DynamicAxes) -> Inputs:
    """The example with every dynamic axis of size 1 doubled: torch.export turns an axis it
    sees at size 1 into the constant 1 (a batch-1 latency batch would fix the batch)."""
    wide = dict(example)
    for name, named in axes.items():
        for axis in named:
            if wide[name].shape[axis] == 1:
                wide[name] = torch.cat([wide[name], wide[name]], dim=axis)
    return wide


def export_dims(axes: DynamicAxes) -> dict[str, dict[int, Any]]:
    """torch.export's `dynamic_shapes`: the batch a named Dim (unbounded), other axes
    Dim.AUTO, whose range and equalities export infers (a sequence is at most the model's
    position table long; input_ids and attention_mask's lengths are equal)."""
    batch = torch.export.Dim(BATCH)
    return {
        name: {
            axis: batch if label == BATCH else torch.export.Dim.AUTO
            for axis, label in named.items()
        }
        for name, named in axes.items()
    }


def fixed_axes(program: torch.export.ExportedProgram, axes: DynamicAxes) -> list[str]:
    """The declared axes that the exported program fixed to one size anyway."""
    shapes = {
        node.name: node.meta["val"].shape
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    }
    return [
        f"axis {axis} ({label}) of {name}, fixed to {shapes[name][axis]}"
        for name, named in axes.items()
        for axis, label in named.items()
        if name in shapes and is_concrete_int(shapes[name][axis])
    ]
