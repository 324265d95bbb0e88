"""Layer fusion before quantization: fold each BatchNorm into the conv or linear before it,
so quantization sees (and the artifact stores) one weight per layer instead of a weight and
a separate normalisation. Pairs are found as neighbours in a Sequential.

Activation fusion (conv+relu, linear+relu) is left to ONNX Runtime, which fuses those at
load and quantizes after the activation in QDQ graphs, so nothing is gained doing it here.
"""

from dataclasses import dataclass

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage

_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@dataclass(frozen=True)
class FuseConfig:
    pass


def fold_batch_norms(module: torch.nn.Module) -> int:
    """Fold every (conv|linear, batchnorm) pair of neighbours in place; returns how many."""
    folded = 0
    for container in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(container._modules)
        for first, second in zip(names, names[1:], strict=False):
            layer, norm = container._modules[first], container._modules[second]
            if not isinstance(norm, _NORMS) or not norm.track_running_stats:
                continue
            if isinstance(layer, _CONVS):
                fused = fuse_conv_bn_eval(layer.eval(), norm.eval())
            elif isinstance(layer, torch.nn.Linear) and isinstance(norm, torch.nn.BatchNorm1d):
                fused = fuse_linear_bn_eval(layer.eval(), norm.eval())
            else:
                continue
            container._modules[first] = fused
            container._modules[second] = torch.nn.Identity()
            folded += 1
    return folded


@register_stage("fuse", FuseConfig)
def fuse(model: CompressedModel, config: FuseConfig, ctx: StageContext) -> CompressedModel:
    model.metrics["fused_layers"] = float(fold_batch_norms(model.module))
    return model
