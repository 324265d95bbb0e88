"""The MiniLM sweep's front beside the recipe users reach for today.

Today's recipe is what sentence-transformers recommends for CPU: ONNX export of the fp32
encoder, then `onnxruntime.quantization.quantize_dynamic` with its defaults (INT8, whole
model). It is built here, outside slimsweep's stages, and scored by the same task, twice:
exported by torch 2.13's default (dynamo) exporter, and by the TorchScript exporter that
optimum and older torch use (its graph ran 7 % faster in ORT). Speed-ups and goals are
against the faster of the two. Every front artifact (sha256-checked from MLflow), the fp32
baseline and today's recipe are then re-measured together, interleaved, on ort_cpu with 2
threads at batch 1 x 128 tokens, so all speed-ups compare numbers taken the same way at the
same time; then once more, fewer rounds, at batch 32 x 128. Trials the space enqueued
(seeds) are marked; the rest TPE drew.

With a space that chooses the runtime (`minilm_nas`), each front artifact is re-measured on
the runtime it targets (torch_cpu programs with torch's CPU kernels, 2 threads), beside the
same ORT artifacts. Every model is scored on the docstring sentences (`cosine`, the metric)
and on the reference manual's (`cosine_manual`, a source distillation never sees); a goal
counts as met only where it holds on both.

Usage (after `slimsweep run task=minilm space=SPACE sweep.dir=DIR ...`):
  .venv/bin/python benchmarks/minilm_front.py DIR --space SPACE > benchmarks/minilm_front.md
"""

import argparse
import contextlib
import hashlib
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import optuna

from slimsweep.sweeps.config import RUNTIME_CHOICES, compose
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.remeasure import Artifact, RemeasureRequest, remeasure
from slimsweep.sweeps.engine.study import open_existing
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.results.tracking import TrackingStore
from slimsweep.sweeps.runtimes import runtime_config
from slimsweep.sweeps.runtimes.onnx_export import export_onnx
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.task import build_task, evaluate_all

TODAY, FP32, TODAY_TS = -1, -2, -3  # artifact ids beside the trial numbers
BASELINES = {
    FP32: ("fp32", "fp32 export"),
    TODAY: ("today", "export (dynamo) + quantize_dynamic INT8"),
    TODAY_TS: ("today", "export (TorchScript) + quantize_dynamic INT8"),
}
GOALS = [  # (minimum cosine, what is compared, at least)
    (0.99, "× faster than today's INT8", 1.3),
    (0.95, "× faster than today's INT8", 2.0),
    (0.97, "× smaller than fp32", 6.0),
]


def todays_recipe(task, scratch: Path) -> dict[int, bytes]:
    """The fp32 export and quantize_dynamic INT8 of each export, as users make them."""
    from onnxruntime.quantization import quantize_dynamic

    made = {}
    for number, exporter in ((TODAY, "dynamo"), (TODAY_TS, "torchscript")):
        fp32, int8 = scratch / f"fp32{number}.onnx", scratch / f"int8{number}.onnx"
        export_onnx(task.build_model(), task.latency_inputs(), fp32, exporter)
        quantize_dynamic(fp32, int8)
        made[number] = int8.read_bytes()
        if number == TODAY:
            made[FP32] = fp32.read_bytes()
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep_dir")
    parser.add_argument("--space", default="minilm")
    parser.add_argument("--sweep", default=None, help="default: minilm-SPACE")
    args = parser.parse_args()
    args.sweep = args.sweep or f"minilm-{args.space}"
    config = compose(["task=minilm", f"space={args.space}", f"sweep.dir={args.sweep_dir}"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_existing(config["sweep"]["storage"], args.sweep)
    except SweepError as error:
        parser.error(str(error))
    store = TrackingStore(config["tracking"]["uri"])
    task = build_task(config["task"])
    data = task.load_data()
    runtime = OrtCpuConfig(name="ort_cpu", threads=2, latency=LatencySettings(quiet_rounds=8))
    batched_latency = LatencySettings(warmup=3, repeats=10, min_seconds=0.0, quiet_rounds=3)
    batched = OrtCpuConfig(name="ort_cpu", threads=2, latency=batched_latency)
    # a front row's chosen runtime, as the sweep composed it, on the same 2 threads
    chosen_runtimes = {
        name: runtime_config({**node, "threads": 2})
        for name, node in config.get(RUNTIME_CHOICES, {}).items()
        if name != "ort_cpu"
    }
    rows = read_results(study).front
    artifacts, quality = [], {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
        for number, content in todays_recipe(task, Path(scratch)).items():
            path = Path(scratch) / f"{number}.onnx"
            path.write_bytes(content)
            scores = evaluate_all(task, OrtCpuRuntime(runtime).load(path), data.eval)
            quality[number] = (
                scores["cosine"],
                scores["recall_at_10"],
                len(content),
                scores.get("cosine_manual"),
            )
            sha256 = hashlib.sha256(content).hexdigest()
            artifacts.append(Artifact(number, "model.onnx", content, sha256))
        for row in rows:
            content, sha256 = store.artifact(row.run_id, row.artifact)
            chosen = chosen_runtimes.get(row.runtime)
            artifacts.append(Artifact(row.trial, row.artifact, content, sha256, chosen))
            metrics = store.client.get_run(row.run_id).data.metrics
            quality[row.trial] = (
                row.values["cosine"],
                metrics.get("recall_at_10"),
                len(content),
                metrics.get("cosine_manual"),
            )
        latency = remeasure(
            RemeasureRequest(artifacts, WorkerSpec(config["task"], runtime))
        ).latency
        task_32 = {**config["task"], "latency_batch_size": 32}
        latency_32 = remeasure(RemeasureRequest(artifacts, WorkerSpec(task_32, batched))).latency

    today = min((TODAY, TODAY_TS), key=lambda n: latency[n].median_ms)
    today_ms, today_32_ms = latency[today].median_ms, latency_32[today].median_ms
    fp32_bytes = quality[FP32][2]
    seeds = {t.number for t in study.trials if "fixed_params" in t.system_attrs}
    print("# MiniLM: the sweep's front beside today's recipe\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}  ")
    print(
        f"sweep: `{args.sweep}`, {len(study.trials)} trials "
        f"({sum(t.state.name == 'COMPLETE' for t in study.trials)} completed), task minilm "
        f"({task.eval_size} docstring + {task.manual_size} manual eval sentences), "
        f"space {args.space}, TPE  "
    )
    print(
        "latency: each artifact on its runtime (ort_cpu; torch_cpu where the space chose it), "
        "2 threads, batch 1 x 128 tokens, everything below re-measured "
        f"together, interleaved, {runtime.latency.quiet_rounds} rounds; median and 95% CI\n"
    )
    print(
        "| model | runtime | arch | recipe | cosine | cosine (manual) | recall@10 "
        "| MB (× smaller) | ms (95% CI) | × faster | ms @ 32 × 128 | × faster @ 32 |"
    )
    print("|" + " --- |" * 12)
    described = {row.trial: row.recipe for row in rows}
    chosen = {
        row.trial: (row.runtime or "ort_cpu", row.arch or "L6 H384 A12 I1536") for row in rows
    }
    described.update({number: recipe for number, (_, recipe) in BASELINES.items()})
    for number in [FP32, TODAY, TODAY_TS, *sorted(described.keys() - BASELINES.keys())]:
        cosine, recall, size, manual = quality[number]
        stats = latency[number]
        on, arch = chosen.get(number, ("ort_cpu", "L6 H384 A12 I1536"))
        manual_cell = "" if manual is None else f"{manual:.4f}"
        name = BASELINES[number][0] if number in BASELINES else f"trial {number}"
        name += " (seed)" if number in seeds else ""
        recall_cell = "" if recall is None else f"{recall:.3f}"
        print(
            f"| {name} | {on} | {arch} | {described[number]} | {cosine:.4f} | {manual_cell} "
            f"| {recall_cell} "
            f"| {size / 1e6:.1f} ({fp32_bytes / size:.2f}) "
            f"| {stats.median_ms:.2f} ({stats.ci95_low_ms:.2f}–{stats.ci95_high_ms:.2f}) "
            f"| {today_ms / stats.median_ms:.2f} | {latency_32[number].median_ms:.1f} "
            f"| {today_32_ms / latency_32[number].median_ms:.2f} |"
        )
    print(
        f"\n× faster: against today's faster export ({BASELINES[today][1]}), "
        "measured in the same interleaved rounds."
    )
    print("\n## Goals\n")
    print("| goal (cosine on both corpora) | best on the front | met |\n| --- | --- | --- |")
    for minimum, measure, target in GOALS:
        candidates = [
            r.trial
            for r in rows
            # a sweep scored on one corpus only is held to that one
            if min(quality[r.trial][0], quality[r.trial][3] or quality[r.trial][0]) >= minimum
        ]
        if "faster" in measure:
            values = {n: today_ms / latency[n].median_ms for n in candidates}
        else:
            values = {n: fp32_bytes / quality[n][2] for n in candidates}
        best = max(values, key=values.get) if values else None
        shown = f"trial {best}: {values[best]:.2f}{measure}" if best is not None else "none"
        met = best is not None and values[best] >= target
        verdict = "**met**" if met else "not met"
        print(f"| ≥ {target}{measure} at cosine ≥ {minimum} | {shown} | {verdict} |")


if __name__ == "__main__":
    main()
