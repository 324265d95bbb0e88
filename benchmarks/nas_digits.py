"""Architecture × recipe × runtime against recipes alone, on the digits task.

For each seed, two real sweeps through the CLI (Ray, SQLite, MLflow; the default sampler,
two trials in flight, no quiet phase so that every latency is a trial's own paired
measurement): `space=digits_nas` (a student CNN or the teacher's shape, pruning,
quantization, and the runtime: ort_cpu or torch_cpu) and `space=digits` (pruning and
quantization of the teacher on ort_cpu), `TRIALS` trials each. Both fronts are scored by
the hypervolume of (1 − accuracy, size, latency), each as a share of the baseline's (the
same fp32 model in both), against one reference point: accuracy 0.90, and 1.05 × the
baseline's size and latency. Points beyond it add nothing.

Usage: .venv/bin/python benchmarks/nas_digits.py [--seeds 0 1 2] > benchmarks/nas_digits.md
"""

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume  # Optuna's own WFG algorithm

from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.study import open_storage
from slimsweep.sweeps.results.rows import read_results

TRIALS = 40
SPACES = {"joint": "digits_nas", "recipes": "digits"}
ACCURACY_FLOOR = 0.90  # the reference point: below this accuracy a model adds nothing
REFERENCE = np.array([1.0, 1.05, 1.05])  # error / (1 − floor), size and latency ratios
HERE = Path(__file__).parent


def run_sweep(space: str, seed: int, folder: Path, cache: Path) -> float:
    started = datetime.now(UTC)
    command = [
        sys.executable,
        "-m",
        "slimsweep.sweeps.cli",
        "run",
        "--quiet",
        f"space={space}",
        f"sweep.dir={folder}",
        f"sweep.cache_dir={cache}",
        f"sweep.name={space}-{seed}",
        f"search.n_trials={TRIALS}",
        f"search.sampler.seed={seed}",
        "runtime.latency.quiet_rounds=0",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return (datetime.now(UTC) - started).total_seconds()


def scored_points(folder: Path, name: str) -> tuple[np.ndarray, list, dict]:
    """Every completed trial as (error share, size ratio, latency ratio), the rows, and the
    baseline's metrics."""
    study = optuna.load_study(
        study_name=name, storage=open_storage(f"sqlite:///{folder}/optuna.db")
    )
    results = read_results(study)
    base = results.baseline_in_sweep or results.baseline
    points = [
        [
            (1.0 - row.values["accuracy"]) / (1.0 - ACCURACY_FLOOR),
            row.values["size_bytes"] / base.values["size_bytes"],
            row.values["latency_ms_median"] / base.values["latency_ms_median"],
        ]
        for row in results.rows
    ]
    return np.array(points), results, base.values


def hypervolume(points: np.ndarray) -> float:
    kept = points[(points < REFERENCE).all(axis=1)]
    return float(compute_hypervolume(kept, REFERENCE)) if len(kept) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table, fronts, seconds = {}, {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        for seed in args.seeds:
            for label, space in SPACES.items():
                folder = Path(scratch) / f"{label}-{seed}"
                seconds[label, seed] = run_sweep(space, seed, folder, cache)
                points, results, _ = scored_points(folder, f"{space}-{seed}")
                table[label, seed] = hypervolume(points)
                fronts[label, seed] = results
                print(f"{label} seed {seed}: HV {table[label, seed]:.4f}", file=sys.stderr)
    report(args.seeds, table, fronts, seconds)


def report(seeds: list[int], table: dict, fronts: dict, seconds: dict) -> None:
    print("# Architecture × recipe × runtime against recipes alone (digits)\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}  ")
    print(
        f"{TRIALS} trials per sweep, default sampler (TPE), 2 in flight, seeds {seeds}; "
        "hypervolume of (1 − accuracy, size, latency) as shares of the baseline's, reference "
        f"point accuracy {ACCURACY_FLOOR}, 1.05 × size, 1.05 × latency (larger is better)\n"
    )
    print(
        "| seed | joint (arch × recipe × runtime) | recipes only | joint / recipes "
        "| minutes (joint, recipes) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for seed in seeds:
        joint, recipes = table["joint", seed], table["recipes", seed]
        print(
            f"| {seed} | {joint:.4f} | {recipes:.4f} | {joint / recipes:.2f} "
            f"| {seconds['joint', seed] / 60:.1f}, {seconds['recipes', seed] / 60:.1f} |"
        )
    joint = np.array([table["joint", s] for s in seeds])
    recipes = np.array([table["recipes", s] for s in seeds])
    print(
        f"| mean | {joint.mean():.4f} (± {joint.std():.4f}) | {recipes.mean():.4f} "
        f"(± {recipes.std():.4f}) | {joint.mean() / recipes.mean():.2f} | |"
    )
    for seed in seeds[:1]:
        for label in SPACES:
            results = fronts[label, seed]
            print(f"\n## Front of the {label} sweep, seed {seed}\n")
            print("| trial | runtime | recipe | accuracy | KB | ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for row in results.front:
                print(
                    f"| {row.trial} | {row.runtime or 'ort_cpu'} | {row.recipe} "
                    f"| {row.values['accuracy']:.4f} | {row.values['size_bytes'] / 1e3:.1f} "
                    f"| {row.values['latency_ms_median']:.4f} |"
                )
    summary = {f"{label}-{seed}": table[label, seed] for label, seed in table}
    (HERE / "nas_digits.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
