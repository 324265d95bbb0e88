"""Structured pruning: remove whole conv filters and linear neurons, ranked by weight norm,
and rewire every layer that depends on them, so the result is a smaller dense model (fewer
parameters and FLOPs on any runtime). Dependency tracking is torch-pruning's (Fang et al.,
DepGraph, 2023), which follows the model's real graph (flattens, residual adds, concats)
rather than assuming a layer order.

The layer that produces the model's output keeps its width: its size is the task's contract.
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.magnitude_prune import PRUNABLE
from slimsweep.sweeps.errors import require_choice, require_range


@dataclass(frozen=True)
class StructuredPruneConfig:
    ratio: float = 0.5  # fraction of each prunable layer's channels removed
    norm: int = 2  # channel importance: L1 or L2 norm of its weights
    scope: str = "per_layer"  # per_layer: every layer alike; global: one ranking over layers

    def __post_init__(self) -> None:
        require_range("ratio", self.ratio, 0.0, 0.95)
        require_choice("norm", self.norm, (1, 2))
        require_choice("scope", self.scope, ("per_layer", "global"))


def output_layers(
    module: torch.nn.Module, example: dict[str, torch.Tensor]
) -> list[torch.nn.Module]:
    """The prunable layers whose outputs are the model's output (they keep their width)."""
    produced: dict[int, torch.nn.Module] = {}
    hooks = [
        layer.register_forward_hook(lambda m, _, out: produced.__setitem__(id(out), m))
        for layer in module.modules()
        if isinstance(layer, PRUNABLE)
    ]
    try:
        with torch.no_grad():
            output = module(**example)
    finally:
        for hook in hooks:
            hook.remove()
    outputs = output if isinstance(output, tuple | list) else [output]
    found = [produced[id(o)] for o in outputs if id(o) in produced]
    if not found:  # the output passes through another op; fall back to the last layer
        found = [[m for m in module.modules() if isinstance(m, PRUNABLE)][-1]]
    return found


def channel_count(module: torch.nn.Module) -> int:
    return sum(m.weight.shape[0] for m in module.modules() if isinstance(m, PRUNABLE))


@register_stage("structured_prune", StructuredPruneConfig)
def structured_prune(
    model: CompressedModel, config: StructuredPruneConfig, ctx: StageContext
) -> CompressedModel:
    import torch_pruning as tp

    if config.ratio == 0:
        return model
    example = ctx.data.calibration[0][0]
    pruner = tp.pruner.MetaPruner(
        model.module,
        example_inputs=example,
        forward_fn=lambda module, inputs: module(**inputs),
        importance=tp.importance.MagnitudeImportance(p=config.norm),
        pruning_ratio=config.ratio,
        global_pruning=config.scope == "global",
        ignored_layers=output_layers(model.module, example),
    )
    pruner.step()
    return model
