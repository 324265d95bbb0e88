"""slimsweep's weight-only Triton kernels against cuBLAS fp16 and torch's int4 tinygemm.

For K = N in --sizes and M in --rows: the median time (`triton.testing.do_bench`) of
- cuBLAS fp16 `x @ W.t()`;
- tinygemm `aten._weight_int4pack_mm` (bf16 activations, group 128, torch's own packing);
- slimsweep INT4 (group --group) and INT8 (per channel), fp16 activations;
each on fresh random inputs, cycling through enough copies of the weight that L2 cannot
hold them between calls. GB/s counts the bytes a call must move (weights, x, y); TFLOP/s is
2·M·N·K over the time. The device's copy bandwidth (read + write of 1 GiB) is measured first.
With --tune, every candidate tile shape is timed for K = N = max(--sizes) and the best is
printed beside the one `choose_tiles` picks, to set its table from.

Then the end-to-end row: a 4-layer 4096-wide MLP with synthetic weights, GPTQ 4-bit (group
--group, calibrated on the GPU) realised by `torch_cuda`, against its fp16 program, in
cuda_graphs mode at batch 1 and 16 (GPU time of the loaded program).

Usage, on a CUDA machine with slimsweep installed, or from a checkout after
`bash tests/gpu/run.sh` has set up /tmp/slimsweep-gpu-site (see benchmarks/kernels.md):
  PYTHONPATH=/tmp/slimsweep-gpu-site python3 benchmarks/kernels.py --out kernels.jsonl
"""

import argparse
import copy
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
import triton
from triton.testing import do_bench
from wide_mlp import WideMlp  # benchmarks/, beside this script

from slimsweep.compressors import STAGES, CompressedModel, HalfPlan, StageContext
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.kernels import triton_mm
from slimsweep.kernels.packing import pack_int4, quantize_int8_per_channel
from slimsweep.kernels.reference import int4_matmul_reference
from slimsweep.kernels.triton_mm import TileConfig
from slimsweep.sweeps.runtimes.torch_program import TorchCudaConfig, TorchCudaRuntime
from slimsweep.sweeps.task import TaskData

L2_COPIES_BYTES = 512 * 2**20  # cycle through at least this many weight bytes


def _median_ms(fn: Callable[[], object]) -> float:
    return float(do_bench(fn, warmup=25, rep=200, return_mode="median"))


def copy_bandwidth_gbs() -> float:
    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() / _median_ms(lambda: dst.copy_(src)) / 1e6


def _cycled(make: Callable[[], tuple], one_bytes: int) -> Callable[[], tuple]:
    copies = [make() for _ in range(max(1, L2_COPIES_BYTES // max(one_bytes, 1)))]
    order = itertools.cycle(copies)
    return lambda: next(order)


def _row(k: int, m: int, group: int, bandwidth: float) -> dict:
    n = k
    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    weight = torch.randn(n, k, device="cuda") / k**0.5
    packed = pack_int4(round_to_nearest(weight, 4, group, False), k)
    qweight, zeros = packed.qweight.cuda(), packed.zeros.cuda()
    scales = packed.scales.cuda().half()
    int8 = quantize_int8_per_channel(weight)
    int8_weight, int8_scales = int8.qweight.cuda(), int8.scales.cuda().half()

    error = (
        triton_mm.int4_matmul(x, qweight, scales, zeros, group).float()
        - int4_matmul_reference(x, qweight, scales, zeros, group).float()
    ).abs().max() / int4_matmul_reference(x, qweight, scales, zeros, group).float().abs().max()

    fp16 = _cycled(lambda: (weight.half().clone(),), 2 * n * k)
    int4 = _cycled(lambda: (qweight.clone(), scales.clone(), zeros.clone()), n * k // 2)
    int8s = _cycled(lambda: (int8_weight.clone(), int8_scales.clone()), n * k)
    times = {
        "cublas_fp16": _median_ms(lambda: x @ fp16()[0].t()),
        "slimsweep_int4": _median_ms(lambda: triton_mm.int4_matmul(x, *int4(), group)),
        "slimsweep_int8": _median_ms(lambda: triton_mm.int8_matmul(x, *int8s())),
    }
    try:
        xb = x.bfloat16()
        codes = packed.codes()[:, :k].to(torch.int32).cuda()
        tiny = torch.ops.aten._convert_weight_to_int4pack(
            (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8), 8
        )
        sz = torch.randn(k // 128, n, 2, device="cuda", dtype=torch.bfloat16)
        tinygemm = _cycled(lambda: (tiny.clone(), sz.clone()), n * k // 2)

        def tinygemm_call() -> torch.Tensor:
            packed_weight, scales_and_zeros = tinygemm()
            return torch.ops.aten._weight_int4pack_mm(xb, packed_weight, 128, scales_and_zeros)

        times["tinygemm_int4"] = _median_ms(tinygemm_call)
    except RuntimeError as error_:  # torch without tinygemm for this device
        times["tinygemm_int4"] = None
        print(f"tinygemm unavailable: {error_}", file=sys.stderr)
    moved = {
        "cublas_fp16": 2 * n * k,
        "slimsweep_int4": n * k // 2 + 2 * n * k // group,
        "slimsweep_int8": n * k + 2 * n,
        "tinygemm_int4": n * k // 2 + 4 * n * k // 128,
    }
    row = {"k": k, "n": n, "m": m, "group": group, "relative_error_int4": float(error)}
    for name, ms in times.items():
        if ms is None:
            continue
        row[f"{name}_ms"] = ms
        row[f"{name}_gbs"] = (moved[name] + 2 * m * (k + n)) / ms / 1e6
        row[f"{name}_tflops"] = 2 * m * n * k / ms / 1e9
        row[f"{name}_copy_fraction"] = row[f"{name}_gbs"] / bandwidth
    return row


def _time_tiles(x: torch.Tensor, args: tuple, group: int, tiles: TileConfig) -> float:
    return _median_ms(lambda: triton_mm.int4_matmul(x, *args, group, tiles))


def tune(k: int, rows: list[int], group: int, budget_s: float) -> list[dict]:
    """Every candidate tile for K = N = k at each M: the best beside `choose_tiles`' pick."""
    weight = torch.randn(k, k, device="cuda") / k**0.5
    packed = pack_int4(round_to_nearest(weight, 4, group, False), k)
    args = packed.qweight.cuda(), packed.scales.cuda().half(), packed.zeros.cuda()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    results = []
    for m in rows:
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        timed, start = {}, time.monotonic()  # each M gets its share of the budget
        for bm, bn, bk, split, warps, stages in itertools.product(
            (16, 32, 64, 128), (32, 64, 128, 256), (64, 128), (1, 2, 4, 8), (4, 8), (3, 4)
        ):
            if bk > group or (bm >= 64 and split > 2) or (bm == 16 and bn == 256):
                continue
            if time.monotonic() - start > budget_s / len(rows):
                break
            tiles = TileConfig(bm, bn, bk, split, warps, stages)
            try:
                timed[tiles] = _time_tiles(x, args, group, tiles)
            except Exception as error:  # noqa: BLE001  (out of shared memory, and the like)
                print(f"skip {tiles}: {type(error).__name__}", file=sys.stderr)
        if not timed:
            continue
        picked = triton_mm.choose_tiles(m, k, k, group, sms)
        best = min(timed, key=timed.get)
        if picked not in timed:
            timed[picked] = _time_tiles(x, args, group, picked)
        results.append(
            {
                "m": m,
                "k": k,
                "best": repr(best),
                "best_ms": timed[best],
                "picked": repr(picked),
                "picked_ms": timed[picked],
                "candidates": len(timed),
            }  # fmt: skip
        )
    return results


def end_to_end(group: int, width: int = 4096, layers: int = 4) -> list[dict]:
    """GPTQ 4-bit on torch_cuda against the fp16 program, GPU time at batch 1 and 16."""
    torch.manual_seed(0)
    model = WideMlp(width, layers).eval()
    batches = [({"x": torch.randn(64, width)}, None) for _ in range(4)]
    context = StageContext(TaskData(batches, batches, batches), device="cuda")
    started = time.monotonic()
    gptq = STAGES.get("gptq").run(
        CompressedModel(copy.deepcopy(model)), {"group_size": group}, context
    )
    gptq_s = time.monotonic() - started
    runtime = TorchCudaRuntime(TorchCudaConfig(name="torch_cuda", mode="cuda_graphs"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, compressed in (
            ("fp16", CompressedModel(model, HalfPlan("fp16"))),
            ("gptq_int4", gptq),
        ):
            paths[name] = Path(folder) / f"{name}.pt2"
            runtime.export(compressed, {"x": torch.randn(2, width)}, [], paths[name])
        for batch in (1, 16):
            row = {"batch": batch, "width": width, "layers": layers, "gptq_s": gptq_s}
            for name, path in paths.items():
                run, _ = runtime.executable(path)
                x = torch.randn(batch, width, device="cuda", dtype=torch.float16)

                def call(run=run, x=x) -> torch.Tensor:  # noqa: ANN001
                    runtime.begin_step()
                    return run(x=x)

                with torch.inference_mode():
                    row[f"{name}_ms"] = _median_ms(call)
                row[f"{name}_bytes"] = path.stat().st_size
            rows.append(row)
    return rows


def _table_line(row: dict) -> str:
    """Speed-ups are cuBLAS fp16's time over each kernel's."""
    base = row["cublas_fp16_ms"]
    tiny = row.get("tinygemm_int4_ms")
    cells = [
        str(row["k"]),
        str(row["m"]),
        f"{base:.4f}",
        f"{base / tiny:.2f}" if tiny else "–",
        f"{base / row['slimsweep_int4_ms']:.2f}",
        f"{row['slimsweep_int4_gbs']:.0f} ({row['slimsweep_int4_copy_fraction']:.0%})",
        f"{base / row['slimsweep_int8_ms']:.2f}",
        f"{row['slimsweep_int4_tflops']:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 16, 256, 4096])
    parser.add_argument("--group", type=int, default=128)
    parser.add_argument("--tune", type=float, default=0.0, help="seconds to spend tuning tiles")
    parser.add_argument("--out", type=Path, default=Path("kernels.jsonl"))
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0)
    bandwidth = copy_bandwidth_gbs()
    head = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "device": device,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "copy_gbs": bandwidth,
    }
    print(f"# slimsweep kernels\n\n{head}\n")
    with args.out.open("a") as out:
        out.write(json.dumps({"head": head}) + "\n")
        print(
            "| K=N | M | cuBLAS fp16 ms | tinygemm × | int4 × | int4 GB/s (copy) | int8 × | TF/s |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in args.sizes:
            for m in args.rows:
                row = _row(k, m, args.group, bandwidth)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(_table_line(row))
        if args.tune:
            for result in tune(max(args.sizes), args.rows, args.group, args.tune):
                out.write(json.dumps({"tune": result}) + "\n")
                print(f"\ntune {result}")
        try:  # the table above is kept whatever happens here
            for row in end_to_end(args.group):
                out.write(json.dumps({"end_to_end": row}) + "\n")
                print(f"\nend to end {row}")
        except Exception as error:  # noqa: BLE001
            print(f"\nend to end failed: {error!r}")


if __name__ == "__main__":
    main()
