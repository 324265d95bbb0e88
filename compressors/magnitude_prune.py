"""Unstructured magnitude pruning to an exact sparsity.

Zeros alone do not shrink a dense file; the runtime stores a pruned weight sparsely when
that is smaller (see runtime option `compact_weights`), so the saving is real bytes.
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.sweeps.errors import require_choice, require_range

PRUNABLE = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@dataclass(frozen=True)
class MagnitudePruneConfig:
    sparsity: float = 0.5  # fraction of prunable weights set to zero
    scope: str = "global"  # global: one threshold over all layers; per_layer: each layer alike

    def __post_init__(self) -> None:
        require_range("sparsity", self.sparsity, 0.0, 1.0, high_inclusive=False)
        require_choice("scope", self.scope, ("global", "per_layer"))


def prunable_weights(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [m.weight for m in module.modules() if isinstance(m, PRUNABLE)]


def _zero_smallest(weights: list[torch.Tensor], sparsity: float) -> None:
    """Zero exactly round(sparsity * n) entries of smallest magnitude (ties broken by position)."""
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    n_zero = round(sparsity * magnitudes.numel())
    if n_zero == 0:
        return
    mask = torch.ones_like(magnitudes, dtype=torch.bool)
    mask[torch.argsort(magnitudes, stable=True)[:n_zero]] = False
    offset = 0
    for weight in weights:
        count = weight.numel()
        weight.mul_(mask[offset : offset + count].view_as(weight))
        offset += count


@register_stage("magnitude_prune", MagnitudePruneConfig)
def magnitude_prune(
    model: CompressedModel, config: MagnitudePruneConfig, ctx: StageContext
) -> CompressedModel:
    weights = prunable_weights(model.module)
    if not weights:
        raise ValueError("magnitude_prune found no Linear or Conv weights to prune")
    with torch.no_grad():
        groups = [weights] if config.scope == "global" else [[w] for w in weights]
        for group in groups:
            _zero_smallest(group, config.sparsity)
    return model
