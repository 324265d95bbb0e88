"""Structured pruning inside transformer blocks of the BERT family (Hugging Face layout):
whole attention heads (`head_prune`) and FFN intermediate neurons (`ffn_prune`). Both give a
smaller dense model: the linears are rebuilt with fewer rows or columns, so every runtime
runs less work.

A head or neuron is ranked by what it adds to the block's output on calibration data
(`importance: activation`, the default: the norm of its share of the output projection's
result), or by weight norms alone (`weight`). On MiniLM, removing a quarter of the heads
keeps cosine 0.918 to the teacher ranked by activations against 0.859 by weights (FFN:
0.881 against 0.843), before any distillation.

Layouts recognised: an attention block with `self.{query,key,value}` (and
`self.attention_head_size`) and `output.dense`; a feed-forward block with
`intermediate.dense` feeding `output.dense`.
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.layers import layer_inputs
from slimsweep.sweeps.errors import require_choice, require_range

IMPORTANCE = ("activation", "weight")


@dataclass(frozen=True)
class HeadPruneConfig:
    ratio: float = 0.25  # share of each layer's heads removed (at least one head stays)
    importance: str = "activation"  # activation (calibration data) | weight (norms only)

    def __post_init__(self) -> None:
        require_range("ratio", self.ratio, 0.0, 1.0, high_inclusive=False)
        require_choice("importance", self.importance, IMPORTANCE)


@dataclass(frozen=True)
class FfnPruneConfig:
    ratio: float = 0.25  # share of each layer's intermediate neurons removed
    importance: str = "activation"  # activation (calibration data) | weight (norms only)

    def __post_init__(self) -> None:
        require_range("ratio", self.ratio, 0.0, 1.0, high_inclusive=False)
        require_choice("importance", self.importance, IMPORTANCE)


def sliced(linear: torch.nn.Linear, keep: torch.Tensor, dim: int) -> torch.nn.Linear:
    """A copy of `linear` keeping the output rows (dim 0) or input columns (dim 1) `keep`."""
    weight = linear.weight.detach().index_select(dim, keep)
    out = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(weight)
        if linear.bias is not None:
            out.bias.copy_(linear.bias if dim == 1 else linear.bias.detach()[keep])
    return out


def _attention_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [
        m
        for m in module.modules()
        if all(hasattr(getattr(m, "self", None), a) for a in ("query", "key", "value"))
        and hasattr(m.self, "attention_head_size")
        and isinstance(getattr(getattr(m, "output", None), "dense", None), torch.nn.Linear)
    ]


def _feed_forward_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [
        m
        for m in module.modules()
        if isinstance(getattr(getattr(m, "intermediate", None), "dense", None), torch.nn.Linear)
        and isinstance(getattr(getattr(m, "output", None), "dense", None), torch.nn.Linear)
    ]


def _kept(importance: torch.Tensor, ratio: float) -> torch.Tensor:
    count = max(1, len(importance) - round(ratio * len(importance)))
    return importance.topk(count).indices.sort().values


@register_stage("head_prune", HeadPruneConfig)
def head_prune(
    model: CompressedModel, config: HeadPruneConfig, ctx: StageContext
) -> CompressedModel:
    blocks = _attention_blocks(model.module)
    if not blocks:
        raise ValueError("head_prune found no BERT-style attention (self.query/key/value)")
    for block in blocks:
        attention, out = block.self, block.output.dense
        size = attention.attention_head_size
        heads = attention.query.out_features // size
        written = out.weight.detach().view(out.out_features, heads, size)
        if config.importance == "activation":
            context = layer_inputs(model.module, out, ctx.data.calibration).view(-1, heads, size)
            importance = torch.einsum("rhs,ohs->hro", context, written).flatten(1).norm(dim=1)
        else:
            value = attention.value.weight.detach().view(heads, size, -1).flatten(1)
            importance = value.norm(dim=1) * written.transpose(0, 1).flatten(1).norm(dim=1)
        kept_heads = _kept(importance, config.ratio)
        rows = (kept_heads[:, None] * size + torch.arange(size)).flatten()
        for name in ("query", "key", "value"):
            setattr(attention, name, sliced(getattr(attention, name), rows, 0))
        block.output.dense = sliced(out, rows, 1)
        attention.num_attention_heads = len(kept_heads)
        attention.all_head_size = len(rows)
    model.metrics["heads_kept"] = float(sum(b.self.num_attention_heads for b in blocks))
    return model


@register_stage("ffn_prune", FfnPruneConfig)
def ffn_prune(model: CompressedModel, config: FfnPruneConfig, ctx: StageContext) -> CompressedModel:
    blocks = _feed_forward_blocks(model.module)
    if not blocks:
        raise ValueError(
            "ffn_prune found no feed-forward block (intermediate.dense → output.dense)"
        )
    for block in blocks:
        up, down = block.intermediate.dense, block.output.dense
        if config.importance == "activation":
            reads = layer_inputs(model.module, down, ctx.data.calibration).norm(dim=0)
        else:
            reads = up.weight.detach().norm(dim=1)
        importance = reads * down.weight.detach().norm(dim=0)
        keep = _kept(importance, config.ratio)
        block.intermediate.dense = sliced(up, keep, 0)
        block.output.dense = sliced(down, keep, 1)
    return model
