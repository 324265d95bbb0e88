"""torch_cuda's execution modes, timed three ways: what slimsweep measures, a plain host-fed
loop around the same compiled program, and the GPU time alone.

Models: the MiniLM architecture (BERT 6×384, random weights: tests/gpu/random_bert.py) at
1×128 (the anchor), 1×18 (the MiniLM task's median sentence, in tokens) and 32×128; the
digits CNN at its latency batch (32). Precisions fp32 (TF32 off), fp16 and bf16; modes
eager, compile, max_autotune and cuda_graphs. For each row:
- slimsweep: the median of `measure_latency` on the runtime's `load()` (host float32
  arrays in, numpy out: copies, casts and the synchronising read-back included);
- host loop: `run(**{k: v.cuda()}).cpu()` on host tensors already in the program's dtype,
  the same compiled program, median of 200 runs;
- GPU: CUDA events around `run(**inputs_on_gpu)`, median of 200 runs.
Goal (issue "GPU trials for real"): slimsweep within 10 % of the host loop.

Rows run in priority order until --budget seconds are spent (compiling is most of it); each
row is appended to --out as one JSON line when done. Usage, on a CUDA machine (after
`bash tests/gpu/run.sh --co -q` has put the wheels on PYTHONPATH, or with slimsweep installed):
  python3 benchmarks/gpu_runtime.py --out gpu_runtime.jsonl > gpu_runtime.md
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from slimsweep.compressors import CompressedModel, HalfPlan
from slimsweep.sweeps.engine.bench import measure_latency
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime
from slimsweep.sweeps.runtimes.shapes import task_axes
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNNTask

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "gpu"))
from random_bert import RandomBertTask  # noqa: E402

MEDIAN_TOKENS = 18  # the MiniLM task's sentences, tokenised: median length (CLS and SEP in)
RUNS = 200

# (model, precision, mode, batch, length): most wanted first
ROWS = [
    *(("minilm", "bf16", m, 1, 128) for m in ("cuda_graphs", "eager", "compile")),
    *(("digits", None, m, 32, 0) for m in ("cuda_graphs", "eager", "compile")),
    *(("minilm", "fp16", m, 1, 128) for m in ("cuda_graphs", "eager", "compile")),
    ("minilm", "bf16", "cuda_graphs", 1, MEDIAN_TOKENS),
    ("minilm", "bf16", "cuda_graphs", 32, 128),
    ("minilm", "bf16", "max_autotune", 1, 128),
    *(("digits", p, m, 32, 0) for p in ("fp16", "bf16") for m in ("cuda_graphs", "eager")),
    *(("minilm", None, m, 1, 128) for m in ("cuda_graphs", "eager")),
    ("minilm", "fp16", "cuda_graphs", 32, 128),
    ("digits", None, "max_autotune", 32, 0),
    ("minilm", "bf16", "eager", 32, 128),
]


def _inputs(model: str, batch: int, length: int) -> dict[str, np.ndarray]:
    if model == "digits":
        pixels = DigitsCNNTask().latency_inputs()["pixels"].numpy()
        return {"pixels": np.resize(pixels, (batch, *pixels.shape[1:]))}
    rng = np.random.default_rng(batch * 1000 + length)
    ids = rng.integers(1000, 30000, size=(batch, length))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def _median_ms(call: Callable[[], object], timer: Callable[[Callable[[], object]], float]) -> float:
    for _ in range(20):
        call()
    return statistics.median(timer(call) for _ in range(RUNS))


def _wall_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def _gpu_ms(call: Callable[[], object]) -> float:
    if not torch.cuda.is_available():  # a CPU dry run: the call's wall time
        return _wall_ms(call)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def measure_row(
    runtime_name: str,
    model: str,
    precision: str | None,
    mode: str,
    batch: int,
    length: int,
    scratch: Path,
    built: dict,
) -> dict:
    if model not in built:
        task = RandomBertTask() if model == "minilm" else DigitsCNNTask()
        built[model] = (task, task.build_model().eval())
    task, module = built[model]
    runtime = build_runtime(RUNTIMES.get(runtime_name).config_type(name=runtime_name, mode=mode))
    example = task.latency_inputs()
    path = scratch / f"{model}-{precision}-{mode}.pt2"
    started = time.perf_counter()
    plan = HalfPlan(precision) if precision else None
    runtime.export(CompressedModel(module, plan), example, [], path, task_axes(task, example))
    host_arrays = _inputs(model, batch, length)
    predict = runtime.load(path)
    predict(host_arrays)  # compiles (and records a graph) for this shape
    slimsweep = measure_latency(predict, host_arrays, LatencySettings()).median_ms
    run, dtype = runtime.executable(path)
    device = runtime.device
    host = {
        k: torch.from_numpy(v).to(dtype) if v.dtype.kind == "f" else torch.from_numpy(v)
        for k, v in host_arrays.items()
    }
    on_device = {k: v.to(device) for k, v in host.items()}

    def host_fed() -> object:
        runtime.begin_step()
        return run(**{k: v.to(device) for k, v in host.items()}).cpu()

    def resident() -> object:
        runtime.begin_step()
        return run(**on_device)

    with torch.inference_mode(), runtime.precision():
        host_loop = _median_ms(host_fed, _wall_ms)
        gpu = _median_ms(resident, _gpu_ms)
    return {
        "model": model,
        "precision": precision or "fp32",
        "mode": mode,
        "shape": f"{batch}×{length}" if length else str(batch),
        "slimsweep_ms": slimsweep,
        "host_loop_ms": host_loop,
        "gpu_ms": gpu,
        "over_host_loop": slimsweep / host_loop - 1,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("gpu_runtime.jsonl"))
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all rows")
    parser.add_argument("--runtime", default="torch_cuda", help="torch_cpu: a CPU dry run")
    parser.add_argument("--rows", type=int, default=len(ROWS))
    args = parser.parse_args()
    modes = RUNTIMES.get(args.runtime).config_type.modes()
    begun = time.perf_counter()
    built: dict = {}
    results = []
    with tempfile.TemporaryDirectory() as scratch, args.out.open("a") as out:
        for row in ROWS[: args.rows]:
            if row[2] not in modes:
                continue
            if time.perf_counter() - begun > args.budget:
                result = {"row": list(row), "skipped": "out of budget"}
            else:
                try:
                    result = measure_row(args.runtime, *row, Path(scratch), built)
                except Exception as error:  # noqa: BLE001 (a row that fails is reported)
                    result = {"row": list(row), "error": f"{type(error).__name__}: {error}"[:400]}
            results.append(result)
            out.write(json.dumps(result) + "\n")
            out.flush()
            print(json.dumps(result), file=sys.stderr, flush=True)
    print(f"# torch_cuda execution modes ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"Machine: {fingerprint()}; torch {torch.__version__}\n")
    columns = "model precision mode shape slimsweep_ms host_loop_ms GPU_ms vs_loop row_s"
    print(f"| {' | '.join(c.replace('_', ' ') for c in columns.split())} |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        if "slimsweep_ms" in r:
            print(
                f"| {r['model']} | {r['precision']} | {r['mode']} | {r['shape']} | "
                f"{r['slimsweep_ms']:.3f} | {r['host_loop_ms']:.3f} | {r['gpu_ms']:.3f} | "
                f"{100 * r['over_host_loop']:+.1f} % | {r['seconds']:.0f} |"
            )
        else:
            print(f"| {' | '.join(map(str, r['row']))} | {r.get('error') or r.get('skipped')} |")


if __name__ == "__main__":
    main()
