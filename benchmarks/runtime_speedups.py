"""fp32 vs int8 vs 4-bit on ort_cpu, bytes and median latency side by side, through slimsweep's
own export, realisation and measurement code.

Models: the digits CNN (batch 32) and one transformer encoder block of BERT-base width
(d=768, 12 heads, FFN 3072) at batch 1 x 128 tokens. Goal (runtimes issue): on the
transformer block, int8 >= 2x faster and >= 3.5x smaller than fp32.

Usage:
  .venv/bin/python benchmarks/runtime_speedups.py [--threads 1 2] > benchmarks/runtime_speedups.md
"""

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from slimsweep.compressors import CompressedModel, Int8Plan, WeightOnlyPlan
from slimsweep.sweeps.engine.bench import measure_latency
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNN


class EncoderBlock(nn.Module):
    """A pre-norm BERT-style block written out, so every matmul is a plain Linear."""

    def __init__(self, width: int = 768, heads: int = 12, ffn: int = 3072) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, ffn), nn.Linear(ffn, width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = hidden.shape
        q, k, v = self.qkv(self.norm1(hidden)).chunk(3, dim=-1)
        split = (batch, tokens, self.heads, width // self.heads)
        q, k, v = (t.reshape(split).transpose(1, 2) for t in (q, k, v))
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        hidden = hidden + self.out(attended.transpose(1, 2).reshape(batch, tokens, width))
        return hidden + self.down(nn.functional.gelu(self.up(self.norm2(hidden))))


PLANS = {
    "fp32": None,
    "int8_dynamic": Int8Plan(calibration=None),
    "int8_static": Int8Plan(),
    "int4_weight g32": WeightOnlyPlan(group_size=32),
    "int4_weight g128": WeightOnlyPlan(group_size=128),
}


def _models() -> dict[
    str, tuple[nn.Module, dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]
]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    block_calibration = [
        {"hidden": torch.randn(1, 128, 768, generator=generator)} for _ in range(8)
    ]
    digits_calibration = [
        {"pixels": torch.rand(32, 1, 8, 8, generator=generator)} for _ in range(4)
    ]
    return {
        "digits CNN (batch 32)": (
            DigitsCNN().eval(),
            {"pixels": torch.rand(32, 1, 8, 8)},
            digits_calibration,
        ),
        "encoder block d=768 (1 x 128)": (
            EncoderBlock().eval(),
            {"hidden": torch.randn(1, 128, 768)},
            block_calibration,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    settings = LatencySettings(warmup=10, repeats=60)
    print(f"# ort_cpu: fp32 vs int8 vs 4-bit\n\ndate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}, onnxruntime {__import__('onnxruntime').__version__}  ")
    print(
        f"latency: median of >= {settings.repeats} runs and >= {settings.min_seconds} s timed, "
        f"after {settings.warmup} warm-up; "
        "95% CI of the median\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for model_name, (module, example, calibration) in _models().items():
            header = "| precision | bytes | × smaller | " + " | ".join(
                f"{t} thread{'s' * (t > 1)}: ms (95% CI) | × faster" for t in args.threads
            )
            print(f"## {model_name}\n\n{header} |\n|" + " --- |" * (3 + 2 * len(args.threads)))
            baseline: dict[str, float] = {}
            for plan_name, plan in PLANS.items():
                path = Path(scratch) / f"{model_name[:6]}-{plan_name}.onnx".replace(" ", "_")
                OrtCpuRuntime(OrtCpuConfig(name="ort_cpu")).export(
                    CompressedModel(module, plan), example, calibration, path
                )
                size = path.stat().st_size
                baseline.setdefault("size", size)
                cells = [plan_name, f"{size:,}", f"{baseline['size'] / size:.2f}"]
                for threads in args.threads:
                    predict = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=threads)).load(
                        path
                    )
                    stats = measure_latency(
                        predict, {k: v.numpy() for k, v in example.items()}, settings
                    )
                    baseline.setdefault(f"t{threads}", stats.median_ms)
                    cells += [
                        f"{stats.median_ms:.3f} ({stats.ci95_low_ms:.3f}–{stats.ci95_high_ms:.3f})",
                        f"{baseline[f't{threads}'] / stats.median_ms:.2f}",
                    ]
                print("| " + " | ".join(cells) + " |", flush=True)
            print()


if __name__ == "__main__":
    main()
