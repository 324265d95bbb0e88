"""Search quality: hypervolume against trials for random search, Optuna's TPE with its
defaults, NSGA-II (conf/search/sampler/nsga2.yaml) and slimsweep's default search (TPE of
conf/search/sampler/tpe.yaml with constant_liar, the baseline and the first tries queued,
repeated recipes answered instead of computed), 3 seeds each, 120 trials, two trials in
flight (asked two at a time, told together).

Every distinct recipe of the space is computed at most once, through a trial's own code path
(`run_trial`: stages, ONNX export, ONNX Runtime, quality on the eval split, latency paired
with the baseline) and kept in a table (`search_quality_<task>.json`), so that every sampler
and seed sees the same measured numbers and the cost is the space's distinct recipes, not
4 x 3 x 120 trials. Hypervolume is taken on the three objectives scaled by the table's
range (1 - quality, size, latency, each divided by its largest value), against the
reference point (1.05, 1.05, 1.05).

Usage:
  .venv/bin/python benchmarks/search_quality.py digits > benchmarks/search_quality_digits.md
  .venv/bin/python benchmarks/search_quality.py tabular > benchmarks/search_quality_tabular.md
  .venv/bin/python benchmarks/search_quality.py digits --space combined \
    > benchmarks/search_quality_digits_combined.md   (the widest recipe space; not yet run)
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume  # Optuna's own WFG algorithm

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.repeats import recipe_key
from slimsweep.sweeps.engine.study import build_sampler
from slimsweep.sweeps.engine.trial import TrialRequest, run_trial
from slimsweep.sweeps.engine.warm_start import first_tries
from slimsweep.sweeps.engine.worker import WorkerSpec
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig
from slimsweep.sweeps.settings import LatencySettings

HERE = Path(__file__).parent
TASKS = {  # overrides selecting each task; tabular is the README's user task (an MLP)
    "digits": [],
    "tabular": [
        f"hydra.searchpath=[file://{HERE / 'overhead_conf'}]",
        "task=tabular",
        "plugins=[overhead_task]",
    ],
}
# latency as the ratio to the baseline's, timed paired with it (what a sweep's figure is)
OBJECTIVES = ("accuracy", "size_bytes", "latency_ratio")
TRIALS, SEEDS, IN_FLIGHT = 120, (0, 1, 2), 2
MARKS = (10, 20, 40, 80, 120)
LATENCY = LatencySettings(warmup=5, repeats=20, min_seconds=0.1, quiet_rounds=0, pair_rounds=4)


class Table:
    """Each distinct recipe's measured objectives, computed on first use and saved."""

    def __init__(self, path: Path, settings, say: Callable[[str], None]) -> None:  # noqa: ANN001
        self.path, self.settings, self.say = path, settings, say
        self.rows: dict[str, list[float]] = json.loads(path.read_text()) if path.exists() else {}
        runtime = OrtCpuConfig(name="ort_cpu", threads=1, latency=LATENCY)
        self.spec = WorkerSpec(settings.task, runtime, settings.plugins)
        self.cache = tempfile.mkdtemp(prefix="slimsweep-search-quality-")

    def values(self, recipe: list) -> list[float]:
        key = recipe_key(recipe)
        if key not in self.rows:
            with contextlib.redirect_stdout(sys.stderr):  # ORT's calibrators print progress
                result = run_trial(TrialRequest(len(self.rows), recipe, self.spec, self.cache))
            if result.error:  # a recipe that fails is as bad as it gets
                self.say(f"failed: {result.error.splitlines()[-1]}")
                self.rows[key] = [0.0, float("inf"), float("inf")]
            else:
                self.rows[key] = [result.metrics[name] for name in OBJECTIVES]
            self.path.write_text(json.dumps(self.rows))
            self.say(f"computed {len(self.rows)}: {self.rows[key]}")
        return self.rows[key]


def _arms(settings) -> dict[str, Callable[[int], optuna.samplers.BaseSampler]]:  # noqa: ANN001
    tpe = settings.search.sampler
    nsga2 = load_settings(["search/sampler=nsga2"]).search.sampler
    return {
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
        "TPE (Optuna defaults)": lambda seed: optuna.samplers.TPESampler(seed=seed),
        "NSGA-II": lambda seed: build_sampler({**nsga2, "seed": seed}),
        "slimsweep default": lambda seed: build_sampler({**tpe, "seed": seed}),
    }


def run_arm(name: str, sampler: optuna.samplers.BaseSampler, settings, table: Table) -> dict:  # noqa: ANN001
    """One search of TRIALS trials; the default also queues and answers as the driver does."""
    default = name == "slimsweep default"
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    if default:
        for params in [settings.space.baseline, *first_tries(settings.space)]:
            study.enqueue_trial(params)
    computed: dict[str, list[float]] = {}
    points, answered = [], 0
    while len(points) < TRIALS:
        batch = [study.ask() for _ in range(min(IN_FLIGHT, TRIALS - len(points)))]
        told = []
        for trial in batch:
            recipe = settings.space.sample(trial)
            key = recipe_key(recipe)
            if default and key in computed:
                answered += 1
            computed.setdefault(key, table.values(recipe))
            told.append((trial, table.values(recipe)))
        for trial, values in told:
            study.tell(trial, values)
            points.append(values)
    return {"points": points, "answered": answered, "distinct": len(computed)}


def hypervolumes(points: list[list[float]], scale: list[float]) -> list[float]:
    """Hypervolume after each trial, objectives scaled to [0, 1] (all minimized)."""
    reference = np.full(3, 1.05)
    curve, kept = [], []
    for accuracy, size, latency in points:
        scaled = np.array([1 - accuracy, size / scale[0], latency / scale[1]])
        if np.all(scaled < reference):
            kept.append(scaled)
        curve.append(float(compute_hypervolume(np.array(kept), reference)) if kept else 0.0)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--space", default="digits", help="a space in conf/space")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))  # the tabular task's module
    settings = load_settings([*TASKS[args.task], f"space={args.space}"])
    label = args.task if args.space == "digits" else f"{args.task}_{args.space}"
    table = Table(
        HERE / f"search_quality_{label}.json", settings, lambda s: print(s, file=sys.stderr)
    )
    runs = {
        (name, seed): run_arm(name, make(seed), settings, table)
        for name, make in _arms(settings).items()
        for seed in SEEDS
    }
    finite = [v for v in table.rows.values() if np.isfinite(v[1])]
    scale = [max(v[1] for v in finite), max(v[2] for v in finite)]
    curves = {key: hypervolumes(run["points"], scale) for key, run in runs.items()}
    command = args.task + (f" --space {args.space}" if args.space != "digits" else "")
    _report(label, command, settings, table, runs, curves)
    _plot(label, curves)


def _report(task: str, command: str, settings, table: Table, runs: dict, curves: dict) -> None:  # noqa: ANN001, E501
    arms = list(dict.fromkeys(name for name, _ in runs))
    print(f"# Search quality on {task} (space {settings.space.name}, runtime ort_cpu, 1 thread)\n")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {fingerprint()}; run by "
          f"`benchmarks/search_quality.py {command}`. {len(table.rows)} distinct recipes "
          f"measured (table: `search_quality_{task}.json`).\n")  # fmt: skip
    print("Hypervolume (mean over seeds 0, 1, 2; min–max) after N trials:\n")
    print("| search | " + " | ".join(f"N={n}" for n in MARKS) + " | recipes computed twice |")
    print("|" + " --- |" * (len(MARKS) + 2))
    for name in arms:
        cells = []
        for n in MARKS:
            at = [curves[(name, s)][n - 1] for s in SEEDS]
            cells.append(f"{statistics.mean(at):.4f} ({min(at):.4f}–{max(at):.4f})")
        twice = [TRIALS - runs[(name, s)]["distinct"] - runs[(name, s)]["answered"] for s in SEEDS]
        print(f"| {name} | " + " | ".join(cells) + f" | {', '.join(map(str, twice))} |")
    target = statistics.mean(curves[("random", s)][TRIALS - 1] for s in SEEDS)
    reached = []
    for seed in SEEDS:
        curve = curves[("slimsweep default", seed)]
        reached.append(next((i + 1 for i, hv in enumerate(curve) if hv >= target), None))
    answered = [runs[("slimsweep default", s)]["answered"] for s in SEEDS]
    print(f"\nRandom search's mean hypervolume at {TRIALS} trials: {target:.4f}. The default "
          f"reaches it after {', '.join(str(r) if r else f'more than {TRIALS}' for r in reached)} "
          f"trials (seeds 0, 1, 2); goal: ≤ 40. Repeats it answered instead of computing: "
          f"{', '.join(map(str, answered))}.\n")  # fmt: skip
    print(f"![hypervolume against trials](search_quality_{task}.png)")


def _plot(task: str, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(name for name, _ in curves):
        stacked = np.array([curves[(name, s)] for s in SEEDS])
        trials = np.arange(1, stacked.shape[1] + 1)
        axes.plot(trials, stacked.mean(axis=0), label=name)
        axes.fill_between(trials, stacked.min(axis=0), stacked.max(axis=0), alpha=0.15)
    axes.set_xlabel("trials")
    axes.set_ylabel("hypervolume (scaled objectives)")
    axes.set_title(f"Search quality on {task}: mean and range over 3 seeds")
    axes.legend()
    figure.tight_layout()
    figure.savefig(HERE / f"search_quality_{task}.png", dpi=110)


if __name__ == "__main__":
    main()
