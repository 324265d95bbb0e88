"""What slimsweep itself costs around the work a user asked for (issue 13, item 12).

Two parts, both on this machine in one run:

1. The exporters (runtime option `exporter`): the fp32 ONNX export of the tabular MLP and of
   MiniLM by `torchscript` and by `dynamo`, timed cold (first export in a fresh process) and
   warm (median of the next ones); the largest difference of each artifact's outputs from
   torch's on the task's eval data; and each artifact's ORT latency, paired against the
   other in one window (1 thread, CPU clock).
2. A 20-trial sweep of the tabular MLP (`overhead_task.py`, space `digits`, parallelism 2,
   default latency settings) through `slimsweep run`, on the commit before issue 13 and on
   this tree, one after the other. Each runs in its own process with timers wrapped around
   the driver's own steps: the fixed start (process launch to the sweep's MLflow run, and
   to the first trial's launch), the driver's bookkeeping per trial (opening the MLflow
   run, recording metrics, artifact, model and Optuna's tell), the quiet phase, and wall.

Usage:
  .venv/bin/python benchmarks/overhead.py --before 3aca5e8 > benchmarks/overhead.md
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SWEEP = [
    "run",
    "--quiet",
    f"hydra.searchpath=[file://{HERE / 'overhead_conf'}]",
    "task=tabular",
    "space=digits",
    "plugins=[overhead_task]",
    "search.parallelism=2",
]


def _child_sweep(out: Path, launched: float, overrides: list[str]) -> None:
    """Run `slimsweep run` in this process with timers on the driver's steps."""
    from slimsweep.sweeps import cli, task_check
    from slimsweep.sweeps.engine import driver, recording
    from slimsweep.sweeps.results import tracking

    marks: dict[str, float] = {"imported": time.time()}
    books: dict[str, list[float]] = {"start": [], "record": []}

    def timed(owner: object, name: str, sink: list[float]) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                sink.append(time.perf_counter() - start)

        setattr(owner, name, wrapper)

    def marked(owner: object, name: str, mark: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            result = original(*args, **kwargs)
            marks.setdefault(mark, time.time())
            return result

        setattr(owner, name, wrapper)

    timed(recording.Recorder, "start", books["start"])
    timed(recording.Recorder, "record", books["record"])
    quiet: list[float] = []
    timed(driver, "remeasure_front", quiet)
    marked(task_check, "check_task", "checked")
    marked(tracking.Tracker, "log_sweep_config", "sweep_run")  # the sweep's run, as it opens
    marked(driver.RayPool, "submit", "first_trial")
    code = cli.main(overrides)
    ended = time.time()
    per_trial = [a + b for a, b in zip(books["start"], books["record"], strict=False)]
    out.write_text(
        json.dumps(
            {
                "exit": code,
                "wall_s": ended - launched,
                "imported_s": marks["imported"] - launched,
                "checked_s": marks["checked"] - launched,
                "sweep_run_s": marks["sweep_run"] - launched,
                "first_trial_s": marks["first_trial"] - launched,
                "quiet_phase_s": sum(quiet),
                "bookkeeping_s": per_trial,
            }
        )
    )


def _package_root(commit: str, scratch: Path) -> Path:
    """A folder whose `slimsweep` is `commit`'s tree: first on PYTHONPATH, it wins over the
    editable install (whose finder comes after the path's)."""
    tree = scratch / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
        check=True,
        capture_output=True,
    )
    root = scratch / "root"
    root.mkdir()
    (root / "slimsweep").symlink_to(tree)
    return root


def _sweep(label: str, package_root: Path | None, trials: int, scratch: Path) -> dict:
    out = scratch / f"{label}.json"
    paths = [str(package_root)] if package_root else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(HERE)])}
    overrides = [*SWEEP, f"search.n_trials={trials}", f"sweep.dir={scratch / label}"]
    launched = time.time()
    subprocess.run(
        [sys.executable, __file__, "--child", str(out), str(launched), *overrides],
        check=True,
        env=env,
        cwd=scratch,
        stdout=sys.stderr,
    )
    return json.loads(out.read_text())


def _child_export(out: Path, exporter: str, task_name: str) -> None:
    """Cold and warm export times, and the artifact's largest difference from torch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from slimsweep.sweeps.runtimes.onnx_export import export_onnx

    task = _task(task_name)
    data = task.load_data()
    model = task.build_model().eval()
    example = task.latency_inputs()
    path = out.with_suffix(".onnx")
    times = []
    for _ in range(4 if task_name == "tabular" else 2):
        start = time.perf_counter()
        export_onnx(model, example, path, exporter, [inputs for inputs, _ in data.calibration])
        times.append(time.perf_counter() - start)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for inputs, _ in data.eval[:4]:
        with torch.no_grad():
            expected = model(**inputs).numpy()
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    out.write_text(
        json.dumps(
            {
                "cold_s": times[0],
                "warm_s": statistics.median(times[1:]),
                "max_abs_diff": worst,
                "bytes": path.stat().st_size,
            }
        )
    )


def _task(name: str):  # noqa: ANN202
    if name == "tabular":
        from overhead_task import TabularTask

        return TabularTask()
    from slimsweep.sweeps.tasks.minilm import MiniLMTask

    return MiniLMTask()


def _exports(scratch: Path) -> list[dict]:
    rows = []
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    for task_name in ("tabular", "minilm"):
        for exporter in ("torchscript", "dynamo", "auto"):
            out = scratch / f"export-{task_name}-{exporter}.json"
            subprocess.run(
                [sys.executable, __file__, "--export", str(out), exporter, task_name],
                check=True,
                env=env,
                stdout=sys.stderr,
            )
            rows.append({"task": task_name, "exporter": exporter, **json.loads(out.read_text())})
    return rows


def _paired_latency(scratch: Path, task_name: str) -> tuple[float, tuple[float, float]]:
    """torchscript's artifact / dynamo's, timed in alternating blocks of one window."""
    from slimsweep.sweeps.engine.bench import measure_paired
    from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime
    from slimsweep.sweeps.settings import LatencySettings

    settings = LatencySettings(warmup=10, repeats=200, min_seconds=6.0, pair_rounds=40)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=1))
    sys.path.insert(0, str(HERE))
    inputs = {k: v.numpy() for k, v in _task(task_name).latency_inputs().items()}
    paired = measure_paired(
        runtime.load(scratch / f"export-{task_name}-torchscript.onnx"),
        runtime.load(scratch / f"export-{task_name}-dynamo.onnx"),
        inputs,
        settings,
        on_calling_thread=True,
    )
    return paired.ratio, paired.ratio_ci95


def _report(exports: list[dict], ratios: dict, sweeps: dict, before: str, trials: int) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Overhead: exporters, fixed start, bookkeeping per trial",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; `benchmarks/overhead.py --before {before}` "
        f"(this tree: HEAD {head} plus its changes).",
        "",
        "## Exporters (fp32 artifact)",
        "",
        "| task | exporter | cold s | warm s | max abs diff from torch | bytes |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in exports:
        lines.append(
            f"| {row['task']} | {row['exporter']} | {row['cold_s']:.2f} | {row['warm_s']:.3f} "
            f"| {row['max_abs_diff']:.1e} | {row['bytes']:,} |"
        )
    lines += [
        "",
        "ORT latency, torchscript's artifact ÷ dynamo's (paired, 1 thread, CPU clock, "
        "40 rounds; 95 % CI):",
        "",
    ]
    for task_name, (ratio, (low, high)) in ratios.items():
        lines.append(f"- {task_name}: {ratio:.3f} [{low:.3f}, {high:.3f}]")
    lines += [
        "",
        f"## A {trials}-trial sweep of the tabular MLP, parallelism 2, default latency settings",
        "",
        f"| | before ({before}) | after (this tree) |",
        "| --- | ---: | ---: |",
    ]
    rows = [
        ("process launch → imports done, s", "imported_s"),
        ("→ task checked, s", "checked_s"),
        ("→ the sweep's MLflow run (fixed start), s", "sweep_run_s"),
        ("→ first trial launched, s", "first_trial_s"),
        ("quiet phase, s", "quiet_phase_s"),
        ("wall, s", "wall_s"),
    ]
    for title, key in rows:
        lines.append(f"| {title} | {sweeps['before'][key]:.1f} | {sweeps['after'][key]:.1f} |")
    for label in ("median", "max"):
        pick = statistics.median if label == "median" else max
        cells = [pick(sweeps[side]["bookkeeping_s"]) for side in ("before", "after")]
        lines.append(
            f"| driver bookkeeping per trial, {label}, s | {cells[0]:.3f} | {cells[1]:.3f} |"
        )
    speedup = sweeps["before"]["wall_s"] / sweeps["after"]["wall_s"]
    lines += ["", f"Wall-time speed-up: {speedup:.2f}×."]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child_sweep(Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
        return
    if sys.argv[1:2] == ["--export"]:
        sys.path.insert(0, str(HERE))
        _child_export(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the commit before issue 13's work")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slimsweep-overhead-") as name:
        scratch = Path(name)
        try:
            exports = _exports(scratch)
            ratios = {t: _paired_latency(scratch, t) for t in ("tabular", "minilm")}
            sweeps = {
                "before": _sweep(
                    "before", _package_root(args.before, scratch), args.trials, scratch
                ),
                "after": _sweep("after", None, args.trials, scratch),
            }
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "tree")],
                capture_output=True,
            )
    print(_report(exports, ratios, sweeps, args.before, args.trials), end="")


if __name__ == "__main__":
    main()
