"""Every compression technique alone on the digits task, against the fp32 baseline.

Each row is one recipe run through the same code path as a sweep's trial (`run_trial`:
stages, real export to ONNX, ORT CPU session, eval accuracy on what ORT predicts, latency
on the task's latency batch), one after the other so no trial disturbs another's timing.

Usage:
  .venv/bin/python benchmarks/techniques.py > benchmarks/techniques.md
"""

import contextlib
import sys
import tempfile
from datetime import UTC, datetime
from typing import Any

from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.trial import TrialRequest, run_trial
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.space import RecipeStep, describe_recipe


def step(stage: str, **params: Any) -> RecipeStep:
    return RecipeStep(stage, stage, params)


def quantize(precision: str, **params: Any) -> RecipeStep:
    return RecipeStep("quantize", "quantize", {"precision": precision, **params})


TECHNIQUES: list[tuple[str, list[RecipeStep]]] = [
    ("fp32 baseline", []),
    ("fp16 weights", [quantize("fp16")]),
    ("bf16 weights", [quantize("bf16")]),
    ("INT8 dynamic", [quantize("int8_dynamic")]),
    ("INT8 static, minmax", [quantize("int8_static")]),
    (
        "INT8 static, entropy, symmetric",
        [quantize("int8_static", calibration="entropy", symmetric=True)],
    ),
    ("INT8 static, per-tensor", [quantize("int8_static", per_channel=False)]),
    ("fusion + INT8 static", [step("fuse"), quantize("int8_static")]),
    ("INT4 weights, RTN g32", [quantize("int4_weight", group_size=32)]),
    ("GPTQ INT4 g32", [step("gptq", group_size=32)]),
    ("GPTQ INT3 g32", [step("gptq", bits=3, group_size=32)]),
    ("AWQ INT4 g32", [step("awq", group_size=32)]),
    ("QAT INT4 g32", [step("qat", group_size=32)]),
    ("magnitude 90 %", [step("magnitude_prune", sparsity=0.9)]),
    ("iterative magnitude 95 %", [step("iterative_prune", sparsity=0.95, steps=100)]),
    ("N:M 2:4", [step("n_m_prune")]),
    ("structured 50 %", [step("structured_prune", ratio=0.5)]),
    (
        "structured 50 % + distill",
        [step("structured_prune", ratio=0.5), step("distill", steps=300)],
    ),
    ("low-rank, 90 % energy", [step("low_rank", keep=0.9)]),
    ("low-rank, rank 25 %", [step("low_rank", mode="rank", keep=0.25)]),
    ("weight sharing 4 bits", [step("weight_share", bits=4)]),
    ("weight sharing 2 bits", [step("weight_share", bits=2)]),
]


def main() -> None:
    task_config = compose([])["task"]
    runtime = OrtCpuConfig(name="ort_cpu", threads=1, latency=LatencySettings())
    print("# Every technique alone on digits_cnn (ort_cpu, 1 thread)\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}  ")
    print(
        f"latency: median of >= {runtime.latency.repeats} runs and >= "
        f"{runtime.latency.min_seconds} s timed after {runtime.latency.warmup} warm-up, "
        "batch 32, 95% CI of the median; accuracy on the 540-image eval split as ORT "
        "predicts it; bytes of the .onnx artifact\n"
    )
    print(
        "| technique | recipe | accuracy (Δ pts) | bytes (× smaller) "
        "| latency ms (ratio to fp32, paired: 95% CI) | × faster (paired) | parameters | notes |\n|"
        + " --- |"
        * 8
    )
    baseline: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        for number, (name, recipe) in enumerate(TECHNIQUES):
            with contextlib.redirect_stdout(sys.stderr):  # ORT's calibrators print progress
                result = run_trial(
                    TrialRequest(number, recipe, WorkerSpec(task_config, runtime), cache)
                )
            if result.error:
                reason = result.error.splitlines()[-1]
                print(f"| {name} | {describe_recipe(recipe)} | failed: {reason} |")
                continue
            m = result.metrics
            baseline = baseline or m
            notes = [
                f"{k} {v:,.0f}"
                for k, v in m.items()
                if k in ("packed_index_bytes", "huffman_index_bytes", "fused_layers")
            ]
            if "huffman_index_bytes" in m:
                coded = m["size_bytes"] - m["packed_index_bytes"] + m["huffman_index_bytes"]
                notes.append(f"Huffman-coded indices: {coded:,.0f} bytes in all")
            if m["zero_fraction"] > 0.01:
                notes.append(f"zeros {m['zero_fraction']:.1%}")
            print(
                f"| {name} | {describe_recipe(recipe)} "
                f"| {m['accuracy']:.4f} ({100 * (m['accuracy'] - baseline['accuracy']):+.2f}) "
                f"| {m['size_bytes']:,.0f} ({baseline['size_bytes'] / m['size_bytes']:.2f}) "
                f"| {m['latency_ms_median_measured']:.3f} "
                f"({m['latency_ratio_ci95_low']:.3f}–{m['latency_ratio_ci95_high']:.3f}x fp32) "
                f"| {1 / m['latency_ratio']:.2f} "
                f"| {m['param_count']:,.0f} | {', '.join(notes)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
