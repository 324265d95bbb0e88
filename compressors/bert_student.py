"""The `bert_student` family: BERT-family encoders (Hugging Face layout, as MiniLM) with
other depth, hidden size, attention heads and FFN size: `L4 H256 A8 I1024`. A student is
the teacher's own class built from its config with those four values changed, so it is a
standard model of its kind (heads must divide the hidden size, as the config requires).

From the teacher (Minitron-style: Muralidharan et al., 2024):
- layers: `layers` of the teacher's, evenly spread, the first and last always kept;
- hidden dimensions: those whose hidden states are largest on calibration sentences, the
  same dimensions in the embeddings, every layer norm and every linear that reads or
  writes the residual stream;
- heads: those that add most to their layer's attention output (as `head_prune` ranks
  them); a student head narrower than the teacher's keeps the query/key dimensions with the
  largest weights and the value dimensions with the largest contribution, and its queries
  are rescaled so that the attention logits keep their scale;
- FFN neurons: activation times outgoing weight (as `ffn_prune`).
Where the student is wider than the teacher, the extra positions keep their fresh
initialisation. The layer norms then see fewer dimensions than they were trained on, which
is what the distillation budget repairs.

A student narrower than the teacher ends in a projection back to the teacher's width, so
that its outputs stay comparable with (and replaceable for) the teacher's: a sentence
embedding index built with the teacher keeps working. From the teacher it starts as the
map that puts each kept dimension back where it was.
"""

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from slimsweep.compressors.architecture import (
    StudentConfig,
    kept_indices,
    padded,
    register_family,
    spread_layers,
    transplant,
)
from slimsweep.compressors.layers import replace_child
from slimsweep.sweeps.errors import ConfigError, require_range
from slimsweep.sweeps.task import Batch

CALIBRATION_BATCHES = 2  # ranking needs far less data than the split holds


@dataclass(frozen=True)
class BertKnobs(StudentConfig):
    layers: int = 4
    hidden: int = 256
    heads: int = 8
    intermediate: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("layers", "hidden", "heads", "intermediate"):
            require_range(key, getattr(self, key), 1, 100_000)
        if self.hidden % self.heads:
            raise ConfigError(
                f"heads={self.heads} must divide hidden={self.hidden}: each head is "
                "hidden / heads wide"
            )

    def summary(self) -> str:
        return f"L{self.layers} H{self.hidden} A{self.heads} I{self.intermediate}"


def _encoder(root: nn.Module) -> tuple[str, nn.Module]:
    """The BERT-family model inside `root` (a sentence encoder wraps one), by its layout."""
    for name, module in root.named_modules():
        layers = getattr(getattr(module, "encoder", None), "layer", None)
        if (
            hasattr(module, "config")
            and hasattr(module, "embeddings")
            and isinstance(layers, nn.ModuleList)
        ):
            return name, module
    raise ValueError("bert_student found no BERT-family model (config, embeddings, encoder.layer)")


class Projected(nn.Module):
    """A narrower encoder whose last hidden states are projected to the teacher's width."""

    def __init__(self, model: nn.Module, width: int) -> None:
        super().__init__()
        self.model = model
        self.projection = nn.Linear(model.config.hidden_size, width, bias=False)

    def forward(self, *args: object, **kwargs: object) -> object:
        outputs = self.model(*args, **kwargs)
        outputs.last_hidden_state = self.projection(outputs.last_hidden_state)
        return outputs


def _shaped(teacher: nn.Module, knobs: BertKnobs) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(student root, its encoder, the teacher's encoder): the teacher's class and config
    with the knobs' sizes, freshly initialised."""
    name, bert = _encoder(teacher)
    config = copy.deepcopy(bert.config)
    config.num_hidden_layers, config.hidden_size = knobs.layers, knobs.hidden
    config.num_attention_heads, config.intermediate_size = knobs.heads, knobs.intermediate
    student_bert = type(bert)(config, add_pooling_layer=getattr(bert, "pooler", None) is not None)
    width = bert.config.hidden_size
    replacing = Projected(student_bert, width) if knobs.hidden != width else student_bert
    student = copy.deepcopy(teacher) if name else replacing
    if name:
        replace_child(student, name, replacing)
    return student.eval(), student_bert.eval(), bert


def random_student(teacher: nn.Module, knobs: BertKnobs, calibration: list[Batch]) -> nn.Module:
    return _shaped(teacher, knobs)[0]


@dataclass
class _Usage:
    """What the teacher's units do on calibration data, summed over tokens."""

    hidden: torch.Tensor  # |state| per hidden dimension, over every layer's output
    heads: dict[int, torch.Tensor]  # layer → each head's contribution to the output
    values: dict[int, torch.Tensor]  # layer → each value dimension's (heads × head size)
    neurons: dict[int, torch.Tensor]  # layer → each FFN neuron's


def _usage(bert: nn.Module, layers: list[int], calibration: list[Batch]) -> _Usage:
    size = bert.config.hidden_size // bert.config.num_attention_heads
    usage = _Usage(torch.zeros(bert.config.hidden_size), {}, {}, {})

    def attention_hook(index: int, out: nn.Linear):  # noqa: ANN202
        written = out.weight.view(out.out_features, -1, size)

        def record(_: nn.Module, args: tuple) -> None:
            context = args[0].reshape(-1, written.shape[1], size)
            share = torch.einsum("rhs,ohs->hro", context, written).square().sum(dim=(1, 2))
            usage.heads[index] = usage.heads.get(index, 0) + share
            value = context.square().sum(0).flatten() * out.weight.square().sum(0)
            usage.values[index] = usage.values.get(index, 0) + value

        return record

    def neuron_hook(index: int):  # noqa: ANN202
        def record(_: nn.Module, args: tuple) -> None:
            reads = args[0].reshape(-1, args[0].shape[-1]).square().sum(0)
            usage.neurons[index] = usage.neurons.get(index, 0) + reads

        return record

    handles = []
    for i in layers:
        layer = bert.encoder.layer[i]
        out = layer.attention.output.dense
        handles.append(out.register_forward_pre_hook(attention_hook(i, out)))
        handles.append(layer.output.dense.register_forward_pre_hook(neuron_hook(i)))
    try:
        for inputs, _ in calibration[:CALIBRATION_BATCHES]:
            states = bert(**inputs, output_hidden_states=True).hidden_states
            mask = inputs["attention_mask"].unsqueeze(-1).to(states[0].dtype)
            for state in states:
                usage.hidden += (state.abs() * mask).sum(dim=(0, 1))
    finally:
        for handle in handles:
            handle.remove()
    for i in layers:
        usage.neurons[i] = usage.neurons[i].sqrt() * bert.encoder.layer[i].output.dense.weight.norm(
            dim=0
        )
    return usage


def _head_rows(
    teacher_heads: torch.Tensor, importance: torch.Tensor, teacher_size: int, size: int
) -> torch.Tensor:
    """The teacher rows (or -1) behind each of the student's heads × `size` dimensions:
    per head, its `size` most important dimensions in their order."""
    rows = []
    for head in teacher_heads.tolist():
        if head < 0:
            rows.append(torch.full((size,), -1))
            continue
        dims = kept_indices(importance[head * teacher_size : (head + 1) * teacher_size], size)
        rows.append(padded(head * teacher_size + dims, size))
    return torch.cat(rows)


def _copy_layer(
    source: nn.Module,
    target: nn.Module,
    usage: _Usage,
    index: int,
    dims: torch.Tensor,
    knobs: BertKnobs,
) -> None:
    attention, student_attention = source.attention.self, target.attention.self
    teacher_size = attention.attention_head_size
    size = knobs.hidden // knobs.heads
    heads = padded(kept_indices(usage.heads[index], knobs.heads), knobs.heads)
    query, key = (
        attention.query.weight[:, dims.clamp(min=0)],
        attention.key.weight[:, dims.clamp(min=0)],
    )
    qk_rows = _head_rows(heads, query.norm(dim=1) * key.norm(dim=1), teacher_size, size)
    v_rows = _head_rows(heads, usage.values[index], teacher_size, size)
    scale = math.sqrt(size / teacher_size)  # logits are divided by sqrt(head size)
    for name, rows, factor in (
        ("query", qk_rows, scale),
        ("key", qk_rows, 1.0),
        ("value", v_rows, 1.0),
    ):
        teacher_linear, student_linear = getattr(attention, name), getattr(student_attention, name)
        transplant(student_linear.weight, teacher_linear.weight * factor, rows, dims)
        transplant(student_linear.bias, teacher_linear.bias * factor, rows)
    _copy_linear(source.attention.output.dense, target.attention.output.dense, dims, v_rows)
    _copy_norm(source.attention.output.LayerNorm, target.attention.output.LayerNorm, dims)
    neurons = padded(kept_indices(usage.neurons[index], knobs.intermediate), knobs.intermediate)
    _copy_linear(source.intermediate.dense, target.intermediate.dense, neurons, dims)
    _copy_linear(source.output.dense, target.output.dense, dims, neurons)
    _copy_norm(source.output.LayerNorm, target.output.LayerNorm, dims)


def _copy_linear(
    source: nn.Linear, target: nn.Linear, rows: torch.Tensor, columns: torch.Tensor
) -> None:
    transplant(target.weight, source.weight, rows, columns)
    transplant(target.bias, source.bias, rows)


def _copy_norm(source: nn.LayerNorm, target: nn.LayerNorm, dims: torch.Tensor) -> None:
    transplant(target.weight, source.weight, dims)
    transplant(target.bias, source.bias, dims)


def from_teacher(teacher: nn.Module, knobs: BertKnobs, calibration: list[Batch]) -> nn.Module:
    student, student_bert, bert = _shaped(teacher, knobs)
    layers = spread_layers(len(bert.encoder.layer), knobs.layers)
    layers += [layers[-1]] * (knobs.layers - len(layers))  # deeper: repeat the last
    usage = _usage(bert, sorted(set(layers)), calibration)
    dims = padded(kept_indices(usage.hidden, knobs.hidden), knobs.hidden)
    embeddings, student_embeddings = bert.embeddings, student_bert.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        table = getattr(embeddings, name, None)
        if table is not None:
            transplant(getattr(student_embeddings, name).weight, table.weight, None, dims)
    _copy_norm(embeddings.LayerNorm, student_embeddings.LayerNorm, dims)
    for target, index in zip(student_bert.encoder.layer, layers, strict=True):
        _copy_layer(bert.encoder.layer[index], target, usage, index, dims, knobs)
    if getattr(bert, "pooler", None) is not None:
        _copy_linear(bert.pooler.dense, student_bert.pooler.dense, dims, dims)
    projection = getattr(student.get_submodule(_encoder(teacher)[0]), "projection", None)
    if projection is not None:  # each kept dimension back in its place
        projection.weight.zero_()
        kept = dims >= 0
        projection.weight[dims[kept], torch.arange(len(dims))[kept]] = 1.0
    return student


register_family("bert_student", BertKnobs, random_student, from_teacher)
