"""Which runtime wins each front: a joint sweep over ORT, torch and OpenVINO (dynamic and
static shapes) on the digits CNN (`space=digits_nas`) and on the README's tabular regression
(`wave_task`, the default recipes with the runtime drawn), through the CLI (Ray, SQLite,
MLflow, the default sampler, two trials in flight, the front re-measured in the quiet phase).

For each front row: its runtime, quality, size and latency as ratios to the fp32 baseline
(ORT, paired in the same rounds); then, per runtime, its front rows and its best latency
ratio among models within 1 % of the baseline's quality.

Usage: .venv/bin/python benchmarks/runtime_fronts.py > benchmarks/runtime_fronts.md
"""

import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import optuna

from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.study import open_storage
from slimsweep.sweeps.results.rows import read_results

HERE = Path(__file__).parent
TRIALS = 40
TASKS = {
    "digits CNN": ["space=digits_nas"],
    "wave regression (README)": [
        f"hydra.searchpath=[file://{HERE / 'runtime_fronts_conf'}]",
        "task=wave",
        "plugins=[user_task]",
        "space=wave_runtimes",
    ],
}
USER_TASK = HERE.parent / "tests" / "unit" / "sweeps"  # where the README's task lives


def run_sweep(overrides: list[str], folder: Path) -> float:
    started = datetime.now(UTC)
    command = [
        *(sys.executable, "-m", "slimsweep.sweeps.cli", "run", "--quiet"),
        f"sweep.dir={folder}",
        "sweep.name=fronts",
        f"search.n_trials={TRIALS}",
        "search.sampler.seed=0",
        "runtime.latency.quiet_rounds=3",
        *overrides,
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=USER_TASK)
    return (datetime.now(UTC) - started).total_seconds()


def report(task: str, folder: Path, seconds: float) -> None:
    storage = open_storage(f"sqlite:///{folder}/optuna.db")
    results = read_results(optuna.load_study(study_name="fronts", storage=storage))
    base = results.baseline
    quality = next(iter(results.objectives))
    print(f"## {task}\n")
    print(
        f"{len(results.rows)} completed trials in {seconds / 60:.1f} min; baseline (fp32, "
        f"ort_cpu): {quality} {base.value(quality):.4f}, {base.value('size_bytes') / 1e3:.1f} KB, "
        f"{base.value('latency_ms_median'):.3f} ms\n"
    )
    print(f"| trial | runtime | recipe | {quality} | × smaller | × faster |")
    print("| --- | --- | --- | --- | --- | --- |")
    best: dict[str, tuple[int, float]] = {}
    for row in results.front:
        runtime = row.runtime or "ort_cpu"
        faster = base.value("latency_ms_median") / row.value("latency_ms_median")
        smaller = base.value("size_bytes") / row.value("size_bytes")
        print(
            f"| {row.trial} | {runtime} | {row.recipe} | {row.value(quality):.4f} "
            f"| {smaller:.2f} | {faster:.2f} |"
        )
        count, fastest = best.get(runtime, (0, 0.0))
        near = abs(row.value(quality) - base.value(quality)) <= 0.01 * abs(base.value(quality))
        best[runtime] = (count + 1, max(fastest, faster) if near else fastest)
    print("\n| runtime | front rows | best × faster within 1 % of the baseline's quality |")
    print("| --- | --- | --- |")
    for runtime, (count, fastest) in sorted(best.items(), key=lambda item: -item[1][1]):
        shown = f"{fastest:.2f}" if fastest else "–"
        print(f"| {runtime} | {count} | {shown} |")
    print()


def main() -> None:
    print("# Which runtime wins each front\n")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ")
    print(f"machine: {fingerprint()}  ")
    print(
        f"each: {TRIALS} trials, seed 0, the default sampler, 2 in flight, quiet phase 3 "
        "rounds; ratios against the fp32 baseline on ort_cpu\n"
    )
    for task, overrides in TASKS.items():
        with tempfile.TemporaryDirectory() as folder:
            seconds = run_sweep(overrides, Path(folder))
            report(task, Path(folder), seconds)


if __name__ == "__main__":
    main()
