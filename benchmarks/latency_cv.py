"""Coefficient of variation of 10 repeated latency measurements of one artifact on this node:
quiet, beside a concurrent trial, and beside a concurrent trial that respects the node lock.

Each measurement is what a trial records (median of `repeats` runs after warm-up). The
concurrent trial is another process training the digits CNN (as a recovery fine-tune or a
baseline would), with 1 or 2 torch threads. Goal (runtimes issue): CV <= 5 % quiet.

Usage: .venv/bin/python benchmarks/latency_cv.py > benchmarks/latency_cv.md
"""

import multiprocessing
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from slimsweep.compressors import CompressedModel
from slimsweep.sweeps.engine.bench import measure_latency
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.node_lock import NodeLock
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNN

MEASUREMENTS = 10
SETTINGS = LatencySettings(warmup=10, repeats=50)


def _concurrent_trial(
    lock_dir: str, use_lock: bool, threads: int, stop: multiprocessing.Event
) -> None:
    """Train the digits CNN until told to stop, in compute phases of ~20 steps."""
    torch.set_num_threads(threads)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters())
    pixels, labels = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    lock = NodeLock(Path(lock_dir), enabled=use_lock)
    while not stop.is_set():
        with lock.compute():
            for _ in range(20):
                loss = torch.nn.functional.cross_entropy(model(pixels), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()


def _measure(predict, inputs, lock: NodeLock) -> list[float]:
    medians = []
    for _ in range(MEASUREMENTS):
        with lock.measure():
            medians.append(measure_latency(predict, inputs, SETTINGS).median_ms)
        time.sleep(0.2)  # between measurements, as between trials
    return medians


def main() -> None:
    context = multiprocessing.get_context("spawn")
    inputs = {"pixels": torch.rand(32, 1, 8, 8)}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=1))
        runtime.export(CompressedModel(DigitsCNN().eval()), inputs, [], path)
        predict = runtime.load(path)
        numpy_inputs = {k: v.numpy() for k, v in inputs.items()}
        print(f"# Latency noise\n\ndate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
        print(f"machine: {fingerprint()}  ")
        print(
            f"artifact: digits CNN fp32 on ort_cpu, 1 intra-op thread, batch 32; each measurement "
            f"= median of >= {SETTINGS.repeats} runs and >= {SETTINGS.min_seconds} s timed, after "
            f"{SETTINGS.warmup} warm-up; "
            f"{MEASUREMENTS} measurements per row\n"
        )
        print(
            "| condition | mean of medians ms | CV of medians | min–max ms |\n"
            "| --- | --- | --- | --- |"
        )
        conditions = [("quiet (nothing else on the node)", None, False)]
        for threads in (1, 2):
            conditions += [
                (
                    f"beside a concurrent trial ({threads} thread{'s' * (threads > 1)}), no lock",
                    threads,
                    False,
                ),
                (
                    f"beside a concurrent trial ({threads} thread{'s' * (threads > 1)}), node lock",
                    threads,
                    True,
                ),
            ]
        for label, threads, use_lock in conditions:
            lock_dir = Path(scratch) / "locks"
            stop = context.Event()
            load = None
            if threads is not None:
                load = context.Process(
                    target=_concurrent_trial, args=(str(lock_dir), use_lock, threads, stop)
                )
                load.start()
                time.sleep(3)  # let it import and start training
            medians = np.array(
                _measure(predict, numpy_inputs, NodeLock(lock_dir, enabled=use_lock))
            )
            if load is not None:
                stop.set()
                load.join()
            cv = medians.std() / medians.mean()
            print(
                f"| {label} | {medians.mean():.3f} | {100 * cv:.1f} % "
                f"| {medians.min():.3f}–{medians.max():.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
