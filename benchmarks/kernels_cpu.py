"""What the weight-only plans cost and save on `torch_cpu`, on this machine.

1. One linear, K = N = 4096, M in 1, 4, 16, 256: median ms of fp32 `x @ W.t()` against the
   packed linears `torch_cpu` exports (torch's int4 kernel at group 128, and int8 per
   channel, both fed bf16), and against the same int4 kernel fed float32 (why the packed
   linears cast to bf16).
2. End to end: a 4-layer 4096-wide MLP (synthetic weights), exported by `torch_cpu` as fp32,
   int4_weight (group 128) and int8_weight, timed with slimsweep's own `measure_latency` on
   `runtime.load()` at batch 1 and 16; bytes on disk of each `.pt2`.

Usage: .venv/bin/python benchmarks/kernels_cpu.py --threads 1 > benchmarks/kernels_cpu.md
"""

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from wide_mlp import WideMlp  # benchmarks/, beside this script

from slimsweep.compressors import CompressedModel
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.compressors.quantize import QuantizeConfig
from slimsweep.kernels.linear import CpuQuantLinear4, CpuQuantLinear8
from slimsweep.kernels.packing import pack_int4, quantize_int8_per_channel
from slimsweep.sweeps.engine.bench import measure_latency
from slimsweep.sweeps.runtimes.torch_program import TorchCpuConfig, TorchCpuRuntime
from slimsweep.sweeps.settings import LatencySettings


def _median_ms(fn: Callable[[], object], seconds: float = 1.0) -> float:
    for _ in range(3):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def one_linear(k: int, rows: list[int]) -> None:
    linear = torch.nn.Linear(k, k)
    packed = pack_int4(round_to_nearest(linear.weight, 4, 128, False), k)
    int4 = CpuQuantLinear4(linear, packed)
    int8 = CpuQuantLinear8(linear, quantize_int8_per_channel(linear.weight))
    print(f"## One linear, K = N = {k}\n")
    print("| M | fp32 ms | int4 ms (bf16 in) | × | int8 ms (bf16 in) | × | int4 ms, float32 in |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    grid = int4.scales_and_offsets.float()
    with torch.inference_mode():
        for m in rows:
            x = torch.randn(m, k)
            dense = _median_ms(lambda x=x: linear(x))
            four = _median_ms(lambda x=x: int4(x))
            eight = _median_ms(lambda x=x: int8(x))
            raw = _median_ms(
                lambda x=x: torch.ops.aten._weight_int4pack_mm_for_cpu(x, int4.qweight, 128, grid)
            )
            print(
                f"| {m} | {dense:.3f} | {four:.3f} | {dense / four:.2f} | {eight:.3f} | "
                f"{dense / eight:.2f} | {raw:.3f} |"
            )


def end_to_end(threads: int, width: int = 4096, layers: int = 4) -> None:
    torch.manual_seed(0)
    model = WideMlp(width, layers).eval()
    runtime = TorchCpuRuntime(TorchCpuConfig(name="torch_cpu", threads=threads))
    settings = LatencySettings(warmup=10, repeats=50, min_seconds=1.0)
    print(f"\n## End to end: {layers} × Linear({width}, {width}) + GELU, torch_cpu eager\n")
    print("| plan | bytes | batch 1 ms | × fp32 | batch 16 ms | × fp32 | max abs error vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    x = torch.randn(16, width)
    with torch.inference_mode():
        expected = model(x)
    base: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("fp32", "int4_weight", "int8_weight"):
            plan = QuantizeConfig(precision, group_size=128).plan()
            path = Path(folder) / f"{precision}.pt2"
            runtime.export(CompressedModel(model, plan), {"x": x[:2]}, [], path)
            predict = runtime.load(path)
            cells = [precision, f"{path.stat().st_size:,}"]
            for batch in (1, 16):
                inputs = {"x": x[:batch].numpy()}
                median = measure_latency(predict, inputs, settings).median_ms
                base.setdefault(batch, median)
                cells += [f"{median:.3f}", f"{base[batch] / median:.2f}"]
            error = float((torch.from_numpy(predict({"x": x.numpy()})) - expected).abs().max())
            cells.append(f"{error:.4f}")
            print("| " + " | ".join(cells) + " |")


def _processor() -> str:
    """The CPU's model name where Linux says it."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0]} ({len(names)} cores)" if names else platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("# Weight-only plans on torch_cpu\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_processor()}, "
        f"torch {torch.__version__}, {args.threads} thread(s); run by "
        f"`benchmarks/kernels_cpu.py --threads {args.threads}`. Each figure a median.\n"
    )
    one_linear(4096, [1, 4, 16, 256])
    end_to_end(args.threads)


if __name__ == "__main__":
    main()
