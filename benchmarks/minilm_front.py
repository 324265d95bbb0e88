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

Usage (after `slimsweep run task=minilm space=minilm sweep.dir=DIR ...`):
  .venv/bin/python benchmarks/minilm_front.py DIR > benchmarks/minilm_front.md
"""

import argparse
import contextlib
import hashlib
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import optuna

from slimsweep.sweeps.config import compose
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.remeasure import Artifact, RemeasureRequest, remeasure
from slimsweep.sweeps.engine.study import open_existing
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.results.tracking import TrackingStore
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
    parser.add_argument("--sweep", default="minilm-minilm")
    args = parser.parse_args()
    config = compose(["task=minilm", "space=minilm", f"sweep.dir={args.sweep_dir}"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_existing(config["sweep"]["storage"], args.sweep)
    except SweepError as error:
        parser.error(str(error))
    store = TrackingStore(config["tracking"]["uri"])
    task = build_task(config["task"])
    data = task.load_data()
    runtime = OrtCpuConfig(name="ort_cpu", threads=2, latency=LatencySettings(quiet_rounds=8))
    batched = OrtCpuConfig(
        name="ort_cpu",
        threads=2,
        latency=LatencySettings(warmup=3, repeats=10, min_seconds=0.0, quiet_rounds=3),
    )
    rows = read_results(study).front
    artifacts, quality = [], {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
        for number, content in todays_recipe(task, Path(scratch)).items():
            path = Path(scratch) / f"{number}.onnx"
            path.write_bytes(content)
            scores = evaluate_all(task, OrtCpuRuntime(runtime).load(path), data.eval)
            quality[number] = (scores["cosine"], scores["recall_at_10"], len(content))
            sha256 = hashlib.sha256(content).hexdigest()
            artifacts.append(Artifact(number, "model.onnx", content, sha256))
        for row in rows:
            content, sha256 = store.artifact(row.run_id, "model.onnx")
            artifacts.append(Artifact(row.trial, "model.onnx", content, sha256))
            recall = store.client.get_run(row.run_id).data.metrics.get("recall_at_10")
            quality[row.trial] = (row.values["cosine"], recall, len(content))
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
        f"(512 eval sentences), space {args.sweep.split('-', 1)[-1]}, TPE  "
    )
    print(
        "latency: ort_cpu, 2 threads, batch 1 x 128 tokens, everything below re-measured "
        f"together, interleaved, {runtime.latency.quiet_rounds} rounds; median and 95% CI\n"
    )
    print(
        "| model | recipe | cosine | recall@10 | MB (× smaller) | ms (95% CI) | × faster "
        "| ms @ 32 × 128 | × faster @ 32 |"
    )
    print("|" + " --- |" * 9)
    described = {row.trial: row.recipe for row in rows}
    described.update({number: recipe for number, (_, recipe) in BASELINES.items()})
    for number in [FP32, TODAY, TODAY_TS, *sorted(described.keys() - BASELINES.keys())]:
        cosine, recall, size = quality[number]
        stats = latency[number]
        name = BASELINES[number][0] if number in BASELINES else f"trial {number}"
        name += " (seed)" if number in seeds else ""
        recall_cell = "" if recall is None else f"{recall:.3f}"
        print(
            f"| {name} | {described[number]} | {cosine:.4f} | {recall_cell} "
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
    print("| goal | best on the front | met |\n| --- | --- | --- |")
    for minimum, measure, target in GOALS:
        candidates = [r.trial for r in rows if quality[r.trial][0] >= minimum]
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
