"""N:M semi-structured sparsity: in every run of M consecutive input weights of a row keep
the N largest (2:4 is what sparse tensor cores run). Rows whose length is not a multiple of
M (a first conv on one channel, say) stay dense.

ONNX Runtime's CPU kernels are dense, so the speed-up is for hardware with N:M kernels;
the bytes saved are real: the artifact stores such weights as values plus a 1-bit mask.
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.magnitude_prune import prunable_weights
from slimsweep.sweeps.errors import ConfigError, require_choice


@dataclass(frozen=True)
class NMPruneConfig:
    n: int = 2  # weights kept ...
    m: int = 4  # ... of every m consecutive ones

    def __post_init__(self) -> None:
        require_choice("m", self.m, (4, 8, 16))
        if not isinstance(self.n, int) or not 1 <= self.n < self.m:
            raise ConfigError(f"n={self.n!r} must be a whole number from 1 to m-1 ({self.m - 1})")


def n_m_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor | None:
    """True where a weight is kept, or None when its rows do not split into runs of m."""
    rows = weight.detach().reshape(weight.shape[0], -1)
    if rows.shape[1] % m:
        return None
    runs = rows.abs().reshape(-1, m)
    kept = torch.zeros_like(runs, dtype=torch.bool)
    kept.scatter_(1, runs.topk(n, dim=1).indices, True)
    return kept.reshape(weight.shape)


@register_stage("n_m_prune", NMPruneConfig)
def n_m_prune(model: CompressedModel, config: NMPruneConfig, ctx: StageContext) -> CompressedModel:
    masks = [(w, n_m_mask(w, config.n, config.m)) for w in prunable_weights(model.module)]
    if all(mask is None for _, mask in masks):
        raise ValueError(f"no layer's rows split into runs of m={config.m}")
    with torch.no_grad():
        for weight, mask in masks:
            if mask is not None:
                weight.mul_(mask)
    return model
