"""Low-rank factorisation: a linear (or 1×1 conv) weight W [out, in] becomes two thinner
layers U·V from its truncated SVD, the best rank-r approximation (Eckart–Young). The rank
comes from a fraction of the full rank or from the share of spectral energy (Σσ²) kept.
A layer is only split when that has fewer parameters than W."""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.layers import replace_child
from slimsweep.sweeps.errors import require_choice, require_range


@dataclass(frozen=True)
class LowRankConfig:
    mode: str = "energy"  # energy: keep `keep` of Σσ²; rank: keep `keep` of the full rank
    keep: float = 0.9
    only: str = ""  # comma-separated parts of layer names to factorise (empty: every layer)

    def __post_init__(self) -> None:
        require_choice("mode", self.mode, ("energy", "rank"))
        require_range("keep", self.keep, 0.0, 1.0, low_inclusive=False)


def chosen_rank(singular_values: torch.Tensor, config: LowRankConfig) -> int:
    if config.mode == "rank":
        return max(1, round(config.keep * len(singular_values)))
    energy = torch.cumsum(singular_values**2, 0) / (singular_values**2).sum()
    return int(torch.searchsorted(energy, torch.tensor(config.keep, dtype=energy.dtype))) + 1


def factorise(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U·√σ [out, r], √σ·Vᵀ [r, in]) whose product is W's best rank-r approximation."""
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).float(), (root[:, None] * vh[:rank]).float()


def _split(layer: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> torch.nn.Module:
    rank = first.shape[1]
    bias = layer.bias is not None
    if isinstance(layer, torch.nn.Linear):
        a = torch.nn.Linear(layer.in_features, rank, bias=False)
        b = torch.nn.Linear(rank, layer.out_features, bias=bias)
    else:
        a = torch.nn.Conv2d(layer.in_channels, rank, 1, layer.stride, bias=False)
        b = torch.nn.Conv2d(rank, layer.out_channels, 1, bias=bias)
    with torch.no_grad():
        a.weight.copy_(second.reshape(a.weight.shape))
        b.weight.copy_(first.reshape(b.weight.shape))
        if bias:
            b.bias.copy_(layer.bias)
    return torch.nn.Sequential(a, b)


def _factorisable(layer: torch.nn.Module) -> bool:
    if isinstance(layer, torch.nn.Linear):
        return True
    return (
        isinstance(layer, torch.nn.Conv2d)
        and layer.kernel_size == (1, 1)
        and layer.groups == 1
        and layer.padding in ((0, 0), "valid")
        and layer.dilation == (1, 1)
    )


@register_stage("low_rank", LowRankConfig)
def low_rank(model: CompressedModel, config: LowRankConfig, ctx: StageContext) -> CompressedModel:
    wanted = [part.strip() for part in config.only.split(",") if part.strip()]
    layers = [
        (n, m)
        for n, m in model.module.named_modules()
        if _factorisable(m) and (not wanted or any(part in n for part in wanted))
    ]
    if not layers:
        raise ValueError(
            f"low_rank found no nn.Linear or 1x1 nn.Conv2d layers (only={config.only!r})"
        )
    for name, layer in layers:
        weight = layer.weight.reshape(layer.weight.shape[0], -1)
        out_size, in_size = weight.shape
        rank = chosen_rank(torch.linalg.svdvals(weight.detach().double()), config)
        if rank * (out_size + in_size) >= out_size * in_size:
            continue  # two factors would be bigger than the layer
        replace_child(model.module, name, _split(layer, *factorise(weight, rank)))
    return model
