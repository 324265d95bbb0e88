"""Grouped low-bit weight grids: one scale and zero point per `group_size` input channels.

The grid is the one ONNX Runtime's MatMulNBits dequantizes, w ≈ (code - zero) * scale, so
whatever rounds a weight here (plain rounding, GPTQ, AWQ, QAT) is exactly what runs.
"""

import warnings

import torch

from slimsweep.compressors.plans import GroupQuantized, WeightOnlyPlan, weight_key
from slimsweep.sweeps.errors import SlimsweepWarning


def group_grid(
    weight: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point [out, 1] covering each row of one group [out, group_size]."""
    top = 2**bits - 1
    if symmetric:
        half = 2 ** (bits - 1)
        scale = weight.abs().amax(dim=1, keepdim=True) / (half - 1)
        zero = torch.full_like(scale, float(half))
    else:
        low = weight.amin(dim=1, keepdim=True).clamp(max=0.0)
        high = weight.amax(dim=1, keepdim=True).clamp(min=0.0)
        scale = (high - low) / top
        zero = torch.round(-low / scale.clamp(min=1e-12)).clamp(0, top)
    return scale.clamp(min=1e-12), zero


def to_codes(
    weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int
) -> torch.Tensor:
    return torch.clamp(torch.round(weight / scale) + zero, 0, 2**bits - 1)


def from_codes(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return (codes - zero) * scale


def fake_quantize(
    weight: torch.Tensor, bits: int, group_size: int, symmetric: bool
) -> torch.Tensor:
    """The weight as its grid gives it back (same shape), for measuring rounding error."""
    return round_to_nearest(weight, bits, group_size, symmetric).dequantize(weight.shape[1])


def warn_if_padded(width: int, group_size: int) -> None:
    """Say what a matmul input that does not fill whole groups costs: its packed weight
    carries the padding."""
    padding = -width % group_size
    if padding:
        warnings.warn(
            SlimsweepWarning(
                f"a {width}-wide matmul input pads to {width + padding} for groups of "
                f"{group_size}: {padding / (width + padding):.0%} of its packed weight is padding"
            ),
            stacklevel=3,
        )


def pad_to_groups(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    padding = -weight.shape[1] % group_size
    return torch.nn.functional.pad(weight, (0, padding))


def round_to_nearest(
    weight: torch.Tensor, bits: int, group_size: int, symmetric: bool
) -> GroupQuantized:
    """Plain rounding of a weight [out, in] to its grouped grid: the baseline GPTQ and AWQ beat."""
    padded = pad_to_groups(weight.detach().float(), group_size)
    out, width = padded.shape
    groups = padded.view(out, width // group_size, group_size)
    scales, zeros, codes = [], [], []
    for g in range(groups.shape[1]):
        scale, zero = group_grid(groups[:, g], bits, symmetric)
        codes.append(to_codes(groups[:, g], scale, zero, bits))
        scales.append(scale)
        zeros.append(zero)
    return GroupQuantized(
        torch.cat(codes, dim=1).to(torch.uint8),
        torch.cat(scales, dim=1),
        torch.cat(zeros, dim=1).to(torch.uint8),
        group_size,
    )


def codes_for(plan: WeightOnlyPlan, weight: torch.Tensor, where: str) -> GroupQuantized:
    """The codes a stage chose for this float weight [out, in], or the weight rounded to
    nearest when the plan carries none. A chosen code never silently falls back to rounding."""
    if plan.codes is None:
        return round_to_nearest(weight, plan.bits, plan.group_size, plan.symmetric)
    found = plan.codes.get(weight_key(weight))
    if found is None:
        raise ValueError(
            f"the plan carries the codes a stage chose for {len(plan.codes)} weights, but none "
            f"for the {list(weight.shape)} weight of {where}: it may have been changed after "
            "the stage ran; refusing to round it again"
        )
    return found
