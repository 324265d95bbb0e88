"""Layer dropping: keep only some blocks of a stack of same-shaped blocks (the layers of a
transformer encoder, the residual blocks of a ResNet stage), chosen by index. The result
is a shallower dense model; distillation from the full teacher is the usual recovery.

The stack is the `nn.ModuleList` at `container`, or, left empty, the longest ModuleList
whose blocks are all of one type.
"""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.layers import replace_child
from slimsweep.sweeps.errors import ConfigError


@dataclass(frozen=True)
class DropLayersConfig:
    keep: str = "0,2,4"  # comma-separated indices of the blocks kept, in order
    container: str = ""  # dotted path of the ModuleList; empty: the longest uniform one

    def __post_init__(self) -> None:
        try:
            indices = self.indices
        except ValueError:
            raise ConfigError(f"keep={self.keep!r} must be comma-separated block indices") from None
        if not indices or len(set(indices)) != len(indices) or min(indices) < 0:
            raise ConfigError(f"keep={self.keep!r} must name distinct blocks, at least one")

    @property
    def indices(self) -> list[int]:
        return [int(part) for part in self.keep.split(",") if part.strip()]


def block_stack(module: torch.nn.Module, container: str) -> tuple[str, torch.nn.ModuleList]:
    if container:
        found = module.get_submodule(container)
        if not isinstance(found, torch.nn.ModuleList):
            raise ValueError(
                f"container {container!r} is a {type(found).__name__}, not a ModuleList"
            )
        return container, found
    stacks = [
        (name, child)
        for name, child in module.named_modules()
        if isinstance(child, torch.nn.ModuleList)
        and len(child) > 1
        and len({type(block) for block in child}) == 1
    ]
    if not stacks:
        raise ValueError("drop_layers found no ModuleList of same-type blocks to drop from")
    return max(stacks, key=lambda item: len(item[1]))


@register_stage("drop_layers", DropLayersConfig)
def drop_layers(
    model: CompressedModel, config: DropLayersConfig, ctx: StageContext
) -> CompressedModel:
    name, stack = block_stack(model.module, config.container)
    if max(config.indices) >= len(stack):
        raise ValueError(f"keep={config.keep!r}: {name} has only {len(stack)} blocks")
    replace_child(model.module, name, torch.nn.ModuleList(stack[i] for i in config.indices))
    model.metrics["kept_layers"] = float(len(config.indices))
    return model
