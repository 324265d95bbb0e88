"""The `conv_student` family: students of a VGG-style CNN (the digits task's model) with
other numbers of conv blocks, channels and hidden units, and another kernel size.

Layout recognised: `features`, an nn.Sequential of blocks that each start with a Conv2d
(followed by whatever the block does after it: activation, pooling), and `classifier`, an
nn.Sequential holding two Linears (hidden units, then outputs). A student keeps the
teacher's first `blocks` blocks; block i has `channels` × (the teacher's width of block i /
its width of block 0) channels.

From the teacher: each block keeps the channels whose activations are largest on
calibration data; a smaller kernel is the centre of the teacher's, a larger one the
teacher's padded with zeros; the hidden units kept are those whose activation (after the
ReLU) times outgoing weight is largest. Where the student is wider than the teacher, the
extra channels and units keep their fresh initialisation. The first Linear takes the
teacher's columns of the kept channels when the student keeps every block (the same spatial
map); otherwise its input means something else and it starts fresh, as does any layer that
has no teacher counterpart.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from slimsweep.compressors.architecture import (
    StudentConfig,
    kept_indices,
    padded,
    register_family,
    transplant,
)
from slimsweep.sweeps.errors import ConfigError, require_range
from slimsweep.sweeps.task import Batch


@dataclass(frozen=True)
class ConvKnobs(StudentConfig):
    blocks: int = 2  # conv blocks kept, from the first
    channels: int = 16  # channels of the first block; later blocks scale as the teacher's
    kernel: int = 3  # odd kernel size of every conv
    hidden: int = 128  # units of the hidden Linear

    def __post_init__(self) -> None:
        super().__post_init__()
        require_range("blocks", self.blocks, 1, 64)
        require_range("channels", self.channels, 1, 4096)
        require_range("hidden", self.hidden, 1, 65536)
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"kernel={self.kernel} must be odd (1, 3, 5...): 'same' padding")

    def summary(self) -> str:
        return f"B{self.blocks} C{self.channels} K{self.kernel} U{self.hidden}"


@dataclass(frozen=True)
class _Block:
    conv: nn.Conv2d
    after: list[nn.Module]  # what the block does after its conv


def _blocks(teacher: nn.Module) -> list[_Block]:
    features = getattr(teacher, "features", None)
    if not isinstance(features, nn.Sequential) or not isinstance(features[0], nn.Conv2d):
        raise ValueError("conv_student needs `features`: an nn.Sequential starting with a Conv2d")
    blocks: list[_Block] = []
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            blocks.append(_Block(layer, []))
        else:
            blocks[-1].after.append(layer)
    return blocks


def _linears(teacher: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    classifier = getattr(teacher, "classifier", None)
    linears = [m for m in getattr(classifier, "children", list)() if isinstance(m, nn.Linear)]
    if not isinstance(classifier, nn.Sequential) or len(linears) != 2:
        raise ValueError("conv_student needs `classifier`: an nn.Sequential with two Linears")
    return linears[0], linears[1]


def _widths(blocks: list[_Block], knobs: ConvKnobs) -> list[int]:
    if knobs.blocks > len(blocks):
        raise ValueError(f"blocks={knobs.blocks}: the teacher has {len(blocks)} conv blocks")
    first = blocks[0].conv.out_channels
    return [max(1, round(knobs.channels * b.conv.out_channels / first)) for b in blocks][
        : knobs.blocks
    ]


def _shaped(teacher: nn.Module, knobs: ConvKnobs, calibration: list[Batch]) -> nn.Module:
    """The student's modules, freshly initialised: the teacher's layout at the knobs' sizes."""
    blocks = _blocks(teacher)
    hidden, output = _linears(teacher)
    layers: list[nn.Module] = []
    before = blocks[0].conv.in_channels
    for block, width in zip(blocks, _widths(blocks, knobs), strict=False):
        conv = block.conv
        layers.append(
            nn.Conv2d(before, width, knobs.kernel, conv.stride, knobs.kernel // 2, bias=True)
        )
        layers += [copy.deepcopy(m) for m in block.after]
        before = width
    student = copy.deepcopy(teacher)
    student.features = nn.Sequential(*layers)
    with torch.no_grad():
        flat = student.features(next(iter(calibration[0][0].values()))[:1]).numel()
    modules = []
    for module in teacher.classifier:
        if module is hidden:
            module = nn.Linear(flat, knobs.hidden)
        elif module is output:
            module = nn.Linear(knobs.hidden, output.out_features)
        modules.append(copy.deepcopy(module))
    student.classifier = nn.Sequential(*modules)
    return student


def random_student(teacher: nn.Module, knobs: ConvKnobs, calibration: list[Batch]) -> nn.Module:
    return _shaped(teacher, knobs, calibration)


def _activations(
    teacher: nn.Module, modules: list[nn.Module], calibration: list[Batch]
) -> list[torch.Tensor]:
    """Mean |output| per channel (dim 1) of each module, over the calibration split."""
    sums: dict[int, torch.Tensor] = {}

    def hook(index: int):  # noqa: ANN202
        def record(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
            dims = [d for d in range(out.dim()) if d != 1]
            sums[index] = sums.get(index, 0) + out.abs().mean(dim=dims)

        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        for inputs, _ in calibration:
            teacher(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return [sums[i] for i in range(len(modules))]


def _after(teacher: nn.Module, hidden: nn.Linear) -> nn.Module:
    """The activation after the hidden Linear (a unit's use is what passes it), else the
    Linear itself."""
    layers = list(teacher.classifier)
    following = layers[layers.index(hidden) + 1 :]
    return following[0] if following and not isinstance(following[0], nn.Linear) else hidden


def _kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """The teacher's kernel cropped to its centre, or padded with zeros, to `size`."""
    have = weight.shape[-1]
    if size <= have:
        start = (have - size) // 2
        return weight[..., start : start + size, start : start + size]
    pad = (size - have) // 2
    return nn.functional.pad(weight, (pad, pad, pad, pad))


def from_teacher(teacher: nn.Module, knobs: ConvKnobs, calibration: list[Batch]) -> nn.Module:
    student = _shaped(teacher, knobs, calibration)
    blocks = _blocks(teacher)
    hidden, output = _linears(teacher)
    widths = _widths(blocks, knobs)
    outs = [b.after[0] if b.after else b.conv for b in blocks]
    *channel_use, unit_use = _activations(teacher, [*outs, _after(teacher, hidden)], calibration)
    kept_in = torch.arange(blocks[0].conv.in_channels)
    student_convs = [m for m in student.features if isinstance(m, nn.Conv2d)]
    for block, conv, width, use in zip(blocks, student_convs, widths, channel_use, strict=False):
        kept = padded(kept_indices(use, width), width)
        transplant(conv.weight, _kernel(block.conv.weight, knobs.kernel), kept, kept_in)
        transplant(conv.bias, block.conv.bias, kept)
        kept_in = kept
    new_hidden, new_output = _linears(student)
    units = padded(kept_indices(unit_use * output.weight.norm(dim=0), knobs.hidden), knobs.hidden)
    if knobs.blocks == len(blocks):  # the same spatial map: each channel's columns carry over
        cells = hidden.in_features // blocks[-1].conv.out_channels
        columns = kept_in[:, None] * cells + torch.arange(cells)
        columns = torch.where(kept_in[:, None] < 0, -1, columns).flatten()
        transplant(new_hidden.weight, hidden.weight, units, columns)
    transplant(new_hidden.bias, hidden.bias, units)
    transplant(new_output.weight, output.weight, None, units)
    new_output.bias.copy_(output.bias)
    return student


register_family("conv_student", ConvKnobs, random_student, from_teacher)
