"""The MiniLM sweep's front beside the one-shot recipes users reach for on a CPU.

The one-shot recipes are built here, outside the sweep, and scored by the same task:
- today's usual recipe, what sentence-transformers recommends: TorchScript ONNX export of the
  fp32 encoder, then `onnxruntime.quantization.quantize_dynamic` with its defaults;
- OpenVINO: the fp32 IR, the same with the bf16 inference hint (where the CPU has it), and
  NNCF's post-training INT8 (`ModelType.TRANSFORMER`, the task's 128 calibration
  sentences), with dynamic shapes and compiled for each timed shape.

Every front artifact (sha256-checked from MLflow) and every one-shot artifact are then
re-measured together, interleaved, each on its own runtime with 2 threads, at batch 1 x 128
tokens and at 1 x 18 (the corpus's median sentence; an artifact compiled for 128 tokens
takes the 18 padded). The anchor at each shape is the faster of the one-shot INT8 recipes
there (ORT's, or NNCF's dynamic or static); every speed-up is against it, measured in the
same rounds. Every model is scored on the docstring sentences and on the reference
manual's; a goal counts only where it holds on both.

Usage (after `slimsweep run task=minilm space=SPACE sweep.dir=DIR ...`):
  .venv/bin/python benchmarks/minilm_front.py DIR --space SPACE > benchmarks/minilm_front.md
"""

import argparse
import contextlib
import hashlib
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from slimsweep.compressors import CompressedModel
from slimsweep.compressors.plans import HalfPlan, Int8Plan
from slimsweep.sweeps.config import RUNTIME_CHOICES, compose
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.remeasure import Artifact, RemeasureRequest, remeasure
from slimsweep.sweeps.engine.study import open_existing
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.results.rows import read_results
from slimsweep.sweeps.results.tracking import TrackingStore
from slimsweep.sweeps.runtimes import build_runtime, runtime_config
from slimsweep.sweeps.runtimes.artifact import artifact_size, read_artifact
from slimsweep.sweeps.runtimes.onnx_export import export_onnx
from slimsweep.sweeps.runtimes.openvino_plans import cpu_capabilities
from slimsweep.sweeps.runtimes.openvino_runtime import OpenVinoCpuConfig
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig
from slimsweep.sweeps.runtimes.shapes import task_axes
from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.task import build_task, evaluate_all

LENGTHS = (128, 18)  # timed shapes: batch 1 x this many tokens
ROUNDS = 8
GOALS = [  # (minimum cosine, what is compared, at least)
    (0.99, "× faster than the anchor", 1.3),
    (0.95, "× faster than the anchor", 2.0),
    (0.97, "× smaller than fp32", 8.0),
]


@dataclass
class Candidate:
    """One artifact in the table: a one-shot recipe (negative number) or a front trial."""

    number: int
    name: str
    runtime: Any  # its runtime config
    recipe: str
    arch: str
    artifact: Artifact
    size: int
    cosine: float
    manual: float | None
    recall: float | None
    anchor: bool = False  # one of the one-shot INT8 recipes the anchor is chosen from
    only_at: int | None = None  # timed at this length only (compiled for it)


def _latency(rounds: int) -> LatencySettings:
    return LatencySettings(quiet_rounds=rounds)


def one_shot_recipes(task, data, scratch: Path) -> list[Candidate]:
    """The recipes a user builds in ten lines, each scored by the task."""
    from onnxruntime.quantization import quantize_dynamic

    teacher = task.build_model()
    example = task.latency_inputs()
    axes = task_axes(task, example)
    calibration = [inputs for inputs, _ in data.calibration]
    ort = OrtCpuConfig(name="ort_cpu", threads=2, latency=_latency(ROUNDS))
    made = []

    def add(name, config, recipe, path, anchor=False, only_at=None):
        predict = build_runtime(config).load(path)
        scores = evaluate_all(task, predict, data.eval) if only_at is None else {}
        blob = read_artifact(path)
        number = -1 - len(made)
        artifact = Artifact(number, path.name, blob, hashlib.sha256(blob).hexdigest(), config)
        made.append(
            Candidate(
                number,
                name,
                config,
                recipe,
                "L6 H384 A12 I1536",
                artifact,
                artifact_size(path),
                scores.get("cosine", float("nan")),
                scores.get("cosine_manual"),
                scores.get("recall_at_10"),
                anchor,
                only_at,
            )
        )

    fp32, int8 = scratch / "fp32.onnx", scratch / "today.onnx"
    export_onnx(teacher, example, fp32, "torchscript", calibration, axes)
    quantize_dynamic(fp32, int8)
    add("fp32", ort, "TorchScript export", fp32)
    add("today", ort, "TorchScript export + quantize_dynamic INT8", int8, anchor=True)

    def openvino(name, plan, recipe, anchor=False, length=None):
        config = OpenVinoCpuConfig(
            name="openvino_cpu",
            threads=2,
            shape="dynamic" if length is None else "static",
            latency=_latency(ROUNDS),
        )
        folder = scratch / name.replace(" ", "_").replace(",", "")
        folder.mkdir()
        shaped = example if length is None else _at_length(task, length)
        path = folder / "model.xml"
        build_runtime(config).export(
            CompressedModel(teacher, plan), shaped, calibration, path, axes
        )
        add(name, config, recipe, path, anchor, None if length in (None, 128) else length)

    openvino("OpenVINO fp32", None, "fp32 IR")
    if "BF16" in cpu_capabilities():
        openvino("OpenVINO bf16", HalfPlan("bf16"), "fp16 IR, bf16 inference hint")
    nncf = "NNCF post-training INT8 (transformer)"
    openvino("OpenVINO INT8", Int8Plan(True, False, "minmax"), nncf, anchor=True)
    for length in LENGTHS:
        name = f"OpenVINO INT8, static 1×{length}"
        openvino(name, Int8Plan(True, False, "minmax"), nncf, anchor=True, length=length)
    return made


def _at_length(task, length: int) -> dict:
    import dataclasses

    return dataclasses.replace(task, max_length=length).latency_inputs()


def front_candidates(config, store, rows, chosen_runtimes) -> list[Candidate]:
    made = []
    for row in rows:
        content, sha256 = store.artifact(row.run_id, row.artifact)
        chosen = chosen_runtimes.get(row.runtime or "ort_cpu")
        metrics = store.client.get_run(row.run_id).data.metrics
        made.append(
            Candidate(
                row.trial,
                f"trial {row.trial}",
                chosen,
                row.recipe,
                row.arch or "L6 H384 A12 I1536",
                Artifact(row.trial, row.artifact, content, sha256, chosen),
                int(metrics["size_bytes"]),
                row.values["cosine"],
                metrics.get("cosine_manual"),
                metrics.get("recall_at_10"),
            )
        )
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
    # each front row's chosen runtime as the sweep composed it, on 2 threads
    choices = config.get(RUNTIME_CHOICES) or {"ort_cpu": config["runtime"]}
    chosen_runtimes = {
        name: runtime_config({**node, "threads": 2, "latency": {"quiet_rounds": ROUNDS}})
        for name, node in choices.items()
    }
    rows = read_results(study).front
    reference = OrtCpuConfig(name="ort_cpu", threads=2, latency=_latency(ROUNDS))
    latency: dict[int, dict[int, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
        candidates = one_shot_recipes(task, data, Path(scratch))
        candidates += front_candidates(config, store, rows, chosen_runtimes)
        for length in LENGTHS:
            timed = [c.artifact for c in candidates if c.only_at in (None, length)]
            spec = WorkerSpec({**config["task"], "max_length": length}, reference)
            latency[length] = remeasure(RemeasureRequest(timed, spec)).latency

    fp32_bytes = candidates[0].size
    anchors = {
        length: min(
            (c for c in candidates if c.anchor and c.number in latency[length]),
            key=lambda c: latency[length][c.number].median_ms,
        )
        for length in LENGTHS
    }
    seeds = {t.number for t in study.trials if "fixed_params" in t.system_attrs}
    print("# MiniLM: the sweep's front beside the one-shot CPU recipes\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()} (CPU capabilities: {', '.join(cpu_capabilities())})  ")
    print(
        f"sweep: `{args.sweep}`, {len(study.trials)} trials "
        f"({sum(t.state.name == 'COMPLETE' for t in study.trials)} completed), task minilm "
        f"({task.eval_size} docstring + {task.manual_size} manual eval sentences), "
        f"space {args.space}  "
    )
    print(
        "latency: each artifact on its own runtime, 2 threads, batch 1 × 128 and 1 × 18 "
        f"tokens, everything re-measured together, interleaved, {ROUNDS} rounds a shape; "
        "median and 95% CI; × faster is against the anchor of that shape\n"
    )
    anchor_names = ", ".join(f"1×{n}: {anchors[n].name}" for n in LENGTHS)
    print(f"anchors (the faster one-shot INT8 at each shape): {anchor_names}\n")
    heads = " | ".join(f"ms @ 1×{n} (95% CI) | × faster @ 1×{n}" for n in LENGTHS)
    print(
        "| model | runtime | arch | recipe | cosine | cosine (manual) | recall@10 "
        f"| MB (× smaller) | {heads} |"
    )
    print("|" + " --- |" * (8 + 2 * len(LENGTHS)))
    for c in candidates:
        name = c.name + (" (seed)" if c.number in seeds else "")
        runtime = c.runtime.name + (
            f", {c.runtime.shape}" if getattr(c.runtime, "shape", "dynamic") == "static" else ""
        )
        cells = []
        for n in LENGTHS:
            stats = latency[n].get(c.number)
            if stats is None:
                cells.append("– | –")
                continue
            ratio = latency[n][anchors[n].number].median_ms / stats.median_ms
            cells.append(
                f"{stats.median_ms:.2f} ({stats.ci95_low_ms:.2f}–{stats.ci95_high_ms:.2f}) "
                f"| {ratio:.2f}"
            )
        manual = "" if c.manual is None else _cell(c.manual)
        recall = "" if c.recall is None else f"{c.recall:.3f}"
        print(
            f"| {name} | {runtime} | {c.arch} | {c.recipe} | {_cell(c.cosine)} | {manual} "
            f"| {recall} | {c.size / 1e6:.1f} ({fp32_bytes / c.size:.2f}) | {' | '.join(cells)} |"
        )
    print("\n## Goals (the front's trials only; cosine on both corpora)\n")
    print("| goal | shape | best on the front | met |\n| --- | --- | --- | --- |")
    front = [c for c in candidates if c.number >= 0]
    for minimum, measure, target in GOALS:
        able = [c for c in front if min(c.cosine, c.manual or c.cosine) >= minimum]
        for n in LENGTHS if "faster" in measure else (None,):
            if n is None:
                values = {c.name: fp32_bytes / c.size for c in able}
            else:
                anchor_ms = latency[n][anchors[n].number].median_ms
                values = {c.name: anchor_ms / latency[n][c.number].median_ms for c in able}
            best = max(values, key=values.get) if values else None
            shown = f"{best}: {values[best]:.2f}{measure}" if best else "none"
            verdict = "**met**" if best and values[best] >= target else "not met"
            where = "any" if n is None else f"1×{n}"
            print(f"| ≥ {target}{measure} at cosine ≥ {minimum} | {where} | {shown} | {verdict} |")


def _cell(value: float) -> str:
    """A score, or a dash for an artifact that takes no eval sentence (compiled for 18)."""
    return "–" if value != value else f"{value:.4f}"


if __name__ == "__main__":
    main()
