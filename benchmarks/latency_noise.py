"""Latency on a loaded node: what a trial records, quiet and beside CPU hogs.

Part 1 times the digits CNN's int8_static artifact paired with its fp32 baseline (exactly
what a trial runs: `measure_paired` with the default latency settings), 10 times per
condition, quiet and beside N spinning processes. It reports the absolute medians (what an
unpaired measurement would record) and the paired ratio.
Part 2 runs the same 4-recipe sweep quiet and with hogs running for the whole sweep, and
compares each trial's recorded ratio.

Goal (latency issue): paired ratios within 5 % of the unloaded run's, where absolute
medians drift by more than 2x.

Usage: .venv/bin/python benchmarks/latency_noise.py > benchmarks/latency_noise.md
"""

import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
import torch

from slimsweep.compressors import CompressedModel, Int8Plan
from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine.bench import measure_paired
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.study import open_storage
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.task import build_task, load_baseline

MEASUREMENTS = 10
SETTINGS = LatencySettings()  # what a trial uses by default
CORES = os.cpu_count() or 2
HOGS = (0, CORES + 1, 2 * CORES + 2)
RECIPES = [
    "{prune: {stage: none}, quantize: {precision: int8_static, per_channel: true,"
    " calibration: minmax}}",
    "{prune: {stage: magnitude_prune, sparsity: 0.7, scope: global}, quantize: {precision: fp16}}",
    "{prune: {stage: none}, quantize: {precision: int4_weight, group_size: 32}}",
]


def _spin(stop: multiprocessing.Event) -> None:
    while not stop.is_set():
        sum(range(100_000))


@contextlib.contextmanager
def _hogs(count: int):
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [context.Process(target=_spin, args=(stop,)) for _ in range(count)]
    for process in processes:
        process.start()
    time.sleep(1 if count else 0)
    try:
        yield
    finally:
        stop.set()
        for process in processes:
            process.join()


def _artifacts(batch: int, scratch: Path):
    config = compose([f"task.latency_batch_size={batch}"])["task"]
    task = build_task(config)
    data = task.load_data()
    model = load_baseline(task, data, scratch / "cache")
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=1))
    example = task.latency_inputs()
    calibration = [inputs for inputs, _ in data.calibration]
    with contextlib.redirect_stdout(sys.stderr):  # ORT's calibrator prints
        runtime.export(CompressedModel(model), example, [], scratch / f"fp32-{batch}.onnx")
        runtime.export(
            CompressedModel(model, Int8Plan()), example, calibration, scratch / f"int8-{batch}.onnx"
        )
    inputs = {k: v.numpy() for k, v in example.items()}
    load = runtime.load
    return load(scratch / f"int8-{batch}.onnx"), load(scratch / f"fp32-{batch}.onnx"), inputs


def part_one(scratch: Path) -> None:
    print("## 1. The trial's paired measurement, 10 times per condition\n")
    print(
        "int8_static digits CNN (candidate) paired with its fp32 baseline on ort_cpu, 1 thread, "
        f"default settings (warm-up {SETTINGS.warmup}, >= {SETTINGS.repeats} runs and "
        f">= {SETTINGS.min_seconds} s per pair, {SETTINGS.pair_rounds} rounds). Hogs: "
        "processes spinning in Python, started before the measurements.\n"
    )
    print(
        "Paired ratios on both clocks: the calling thread's CPU time (what a trial with one "
        "thread uses) and wall time (what a trial with more threads, or on a GPU, uses).\n"
    )
    print(
        "| batch | hogs | baseline median ms (x quiet) | candidate median ms (x quiet) "
        "| unpaired: candidate / quiet baseline | paired, CPU clock: mean (min–max), worst "
        "| paired, wall clock: mean (min–max), worst |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for batch in (32, 512):
        candidate, baseline, inputs = _artifacts(batch, scratch)
        quiet: dict[str, float] = {}
        for hogs in HOGS:
            with _hogs(hogs):
                pairs = {
                    clock: [
                        measure_paired(
                            candidate, baseline, inputs, SETTINGS, on_calling_thread=clock
                        )
                        for _ in range(MEASUREMENTS)
                    ]
                    for clock in (True, False)
                }
            wall = pairs[False]
            base = float(np.mean([p.baseline.median_ms for p in wall]))
            cand = float(np.mean([p.candidate.median_ms for p in wall]))
            ratios = {clock: np.array([p.ratio for p in found]) for clock, found in pairs.items()}
            quiet = quiet or {
                "base": base,
                "cand": cand,
                **{str(clock): float(r.mean()) for clock, r in ratios.items()},
            }
            cells = []
            for clock, found in ratios.items():
                worst = float(np.abs(found / quiet[str(clock)] - 1).max())
                cells.append(
                    f"{found.mean():.3f} ({found.min():.3f}–{found.max():.3f}), {100 * worst:.1f} %"
                )
            print(
                f"| {batch} | {hogs} | {base:.3f} ({base / quiet['base']:.2f}x) "
                f"| {cand:.3f} ({cand / quiet['cand']:.2f}x) | {cand / quiet['base']:.3f} "
                f"| {cells[0]} | {cells[1]} |",
                flush=True,
            )


def _sweep(workdir: Path, name: str, hogs: int) -> list[optuna.trial.FrozenTrial]:
    args = [
        sys.executable,
        *("-m", "slimsweep.sweeps.cli", "run", "--quiet"),
        f"sweep.dir={workdir}",
        f"sweep.name={name}",
        f"search.n_trials={1 + len(RECIPES)}",
        "search.parallelism=1",
        "task.latency_batch_size=512",
        "runtime.latency.quiet_rounds=0",
        f"space.enqueue=[{', '.join(RECIPES)}]",
    ]
    with _hogs(hogs):
        subprocess.run(args, check=True, capture_output=True)
    storage = open_storage(f"sqlite:///{workdir}/optuna.db")
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def part_two(scratch: Path) -> None:
    hogs = HOGS[1]
    print(f"\n## 2. A 4-trial sweep, quiet and with {hogs} hogs for the whole sweep\n")
    print(
        "Digits CNN, latency batch 512, parallelism 1, default latency settings, no quiet "
        "phase. Each trial's recorded numbers.\n"
    )
    quiet = _sweep(scratch, "quiet", 0)
    loaded = _sweep(scratch, "loaded", hogs)
    print(
        "| recipe | baseline ms quiet → loaded | measured median ms quiet → loaded "
        "| ratio quiet → loaded | change |\n| --- | --- | --- | --- | --- |"
    )
    for calm, busy in zip(quiet, loaded, strict=True):
        a, b = calm.user_attrs["metrics"], busy.user_attrs["metrics"]
        print(
            f"| {calm.user_attrs['recipe']} "
            f"| {a['baseline_latency_ms_median']:.2f} → {b['baseline_latency_ms_median']:.2f} "
            f"| {a['latency_ms_median_measured']:.2f} → {b['latency_ms_median_measured']:.2f} "
            f"| {a['latency_ratio']:.3f} → {b['latency_ratio']:.3f} "
            f"| {100 * (b['latency_ratio'] / a['latency_ratio'] - 1):+.1f} % |",
            flush=True,
        )


def main() -> None:
    torch.set_num_threads(1)
    print(f"# Latency on a loaded node\n\ndate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}\n")
    with tempfile.TemporaryDirectory() as scratch:
        part_one(Path(scratch))
        part_two(Path(scratch))


if __name__ == "__main__":
    main()
