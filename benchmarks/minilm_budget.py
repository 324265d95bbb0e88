"""How far distillation budget moves a MiniLM student: one teacher-initialised student,
distilled continuously (one run of the stage's training loop, Adam state kept), its cosine
to the teacher read at checkpoints on both eval corpora (docstrings, reference manual), in
fp32 torch: the ceiling any quantization of it then starts from.

Usage: .venv/bin/python benchmarks/minilm_budget.py [--arch 4,384,12,1536] \
           [--steps 600 1200 2400] > benchmarks/minilm_budget.md
"""

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from slimsweep.compressors.architecture import FAMILIES
from slimsweep.compressors.base import StageContext
from slimsweep.compressors.finetune import finetune
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.task import load_task_data
from slimsweep.sweeps.tasks.minilm import MANUAL, MiniLMTask


def cosines(task: MiniLMTask, module: torch.nn.Module, batches: list) -> tuple[float, float]:
    """Cosine to the teacher on the docstrings and on the manual."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        outputs = np.concatenate([module(**inputs).numpy() for inputs, _ in batches])
    targets = np.concatenate([t.numpy() for _, t in batches])
    module.train(was_training)
    manual = targets[:, -1] == MANUAL
    return task.score(outputs[~manual], targets[~manual]), task.score(
        outputs[manual], targets[manual]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="4,384,12,1536", help="layers,hidden,heads,intermediate")
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 600, 1200, 2400])
    parser.add_argument("--learning-rate", type=float, default=0.0003)
    parser.add_argument("--cache-dir", help="a sweep's cache folder, to reuse its task data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    layers, hidden, heads, intermediate = map(int, args.arch.split(","))
    task = MiniLMTask()
    with TemporaryDirectory() as scratch:
        data = load_task_data(task, Path(args.cache_dir or scratch))
    teacher = task.build_model()
    family = FAMILIES.get("bert_student")
    knobs = family.knobs(
        layers=layers,
        hidden=hidden,
        heads=heads,
        intermediate=intermediate,
        steps=max(args.steps),
        learning_rate=args.learning_rate,
    )
    torch.manual_seed(0)
    with torch.no_grad():
        student = family.from_teacher(teacher, knobs, data.calibration)
    readings = [(0, *cosines(task, student, data.eval), 0.0)]
    print(f"step 0: {readings[-1][1:3]}", file=sys.stderr)
    started, step = time.perf_counter(), 0

    def read(module: torch.nn.Module) -> None:
        nonlocal step
        step += 1
        if step in args.steps:
            paused = time.perf_counter()
            docstrings, manual = cosines(task, module, data.eval)
            readings.append((step, docstrings, manual, time.perf_counter() - paused))
            print(f"step {step}: {docstrings:.4f} {manual:.4f}", file=sys.stderr)

    context = StageContext(data, 0, task, teacher, "cpu", read)
    finetune(student, context, knobs, keep_zeros=False)
    total = time.perf_counter() - started - sum(r[3] for r in readings)
    print(f"# Distillation budget of a MiniLM student ({knobs.summary()})\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}, torch with 2 threads  ")
    print(
        f"student {knobs.summary()} from the teacher (bert_student), distilled with cosine "
        f"loss at learning rate {args.learning_rate}, batch {task.batch_size} unlabelled "
        f"docstring sentences; {total / max(args.steps):.2f} s per step here; cosine in fp32 "
        f"torch on {task.eval_size} docstring and {task.manual_size} manual sentences\n"
    )
    print("| steps | cosine (docstrings) | cosine (manual) |\n| --- | --- | --- |")
    for step_count, docstrings, manual, _ in readings:
        print(f"| {step_count} | {docstrings:.4f} | {manual:.4f} |")


if __name__ == "__main__":
    main()
