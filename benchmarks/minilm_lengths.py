"""MiniLM's latency at the anchor (1×128 tokens, the task's latency batch) and at the task's
real median sentence length, from the same artifacts: every runtime now exports the sentence
length dynamic, so a deployment need not pad a short sentence to 128.

Usage:
  .venv/bin/python benchmarks/minilm_lengths.py > benchmarks/minilm_lengths.md
"""

import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from slimsweep.compressors import CompressedModel, Int8Plan
from slimsweep.sweeps.engine.bench import measure_latency
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.runtimes import RUNTIMES, build_runtime
from slimsweep.sweeps.runtimes.shapes import task_axes
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.tasks.minilm import MiniLMTask, _tokenizer
from slimsweep.sweeps.tasks.stdlib_corpus import stdlib_sentences

THREADS = 2
CASES = [  # (runtime, plan, label)
    ("ort_cpu", None, "fp32"),
    ("ort_cpu", Int8Plan(per_channel=True, symmetric=False, calibration=None), "int8 dynamic"),
    ("torch_cpu", None, "fp32"),
]


def median_sentence(task: MiniLMTask) -> tuple[dict[str, np.ndarray], int]:
    """A real sentence of the corpus's median length in tokens (CLS and SEP included)."""
    tokenizer = _tokenizer()
    tokenizer.enable_truncation(task.max_length)
    tokenizer.no_padding()
    encoded = tokenizer.encode_batch(stdlib_sentences())
    length = int(statistics.median(len(e.ids) for e in encoded))
    chosen = next(e for e in encoded if len(e.ids) == length)
    inputs = {"input_ids": chosen.ids, "attention_mask": chosen.attention_mask}
    return {k: np.array([v], dtype=np.int64) for k, v in inputs.items()}, length


def main() -> None:
    task = MiniLMTask()
    model = task.build_model()
    example = task.latency_inputs()
    axes = task_axes(task, example)
    anchor = {k: v.numpy() for k, v in example.items()}
    median_inputs, length = median_sentence(task)
    now = datetime.now(UTC)
    print(f"# MiniLM latency at 128 tokens and at the median sentence ({now:%Y-%m-%d %H:%M} UTC)")
    print(f"\nMachine: {fingerprint()}; {THREADS} threads; median sentence: {length} tokens.\n")
    print("| runtime | precision | 1×128 ms | 1×median ms | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    settings = LatencySettings(warmup=10, repeats=50, min_seconds=2.0)
    with tempfile.TemporaryDirectory() as scratch:
        for name, plan, label in CASES:
            runtime = build_runtime(RUNTIMES.get(name).config_type(name=name, threads=THREADS))
            path = Path(scratch) / f"{name}-{label}-{runtime.artifact_name}"
            calibration = []
            runtime.export(CompressedModel(model, plan), example, calibration, path, axes)
            predict = runtime.load(path)
            long_ms = measure_latency(predict, anchor, settings).median_ms
            short_ms = measure_latency(predict, median_inputs, settings).median_ms
            print(
                f"| {name} | {label} | {long_ms:.2f} | {short_ms:.2f} | {long_ms / short_ms:.1f}× |"
            )


if __name__ == "__main__":
    main()
