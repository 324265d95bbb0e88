"""Finding the layers a stage works on, and what flows into them on calibration data."""

import contextlib
from collections.abc import Iterator

import torch

from slimsweep.sweeps.task import Batch


def named_linears(module: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Linear]]:
    """Every nn.Linear in forward-definition order, the layers low-bit matmuls reach."""
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.Linear):
            yield name, child


class _Reached(Exception):
    """Stops a forward pass once the layer of interest has seen its input."""


def layer_inputs(
    module: torch.nn.Module, layer: torch.nn.Module, batches: list[Batch], max_rows: int = 4096
) -> torch.Tensor:
    """The inputs `layer` sees when `module` runs on `batches`, as rows [samples, features]:
    at most `max_rows`, drawn evenly (a fixed seed) from all of them. Each forward stops at
    the layer, so calibrating early layers costs a fraction of a pass. It runs where the
    module's parameters are (the batches follow them)."""
    device = next(module.parameters()).device
    seen: list[torch.Tensor] = []

    def record(_: torch.nn.Module, args: tuple) -> None:
        seen.append(args[0].detach().reshape(-1, args[0].shape[-1]).float())
        raise _Reached

    handle = layer.register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            for inputs, _ in batches:
                with contextlib.suppress(_Reached):
                    module(**{k: v.to(device) for k, v in inputs.items()})
    finally:
        handle.remove()
    if not seen:
        raise ValueError("the calibration split never reached this layer; is it empty?")
    rows = torch.cat(seen)
    if len(rows) > max_rows:
        chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:max_rows]
        rows = rows[chosen.sort().values.to(rows.device)]
    return rows


def replace_child(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Swap the submodule at dotted path `name` for `new`."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
