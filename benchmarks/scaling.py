"""Sweeps across Ray nodes: throughput with 1 and 2 nodes, and the framework's cost per trial
against Ray Tune + OptunaSearch and a plain Ray + Optuna ask/tell loop.

1. Trials per hour on a real multi-raylet cluster on 127.0.0.1 (ray.cluster_utils.Cluster: a
   head that runs no trial, plus 1 or 2 nodes of one CPU each), `slimsweep run` joining it
   with parallelism = nodes. The task is the tabular MLP (`overhead_task.py`); each trial's
   fixed, CPU-bound cost is its latency measurement (`runtime.latency.min_seconds`), with
   the node lock off (both raylets share this machine's lock file). Throughput counts the
   trials after the baseline, from the first one's start to the last one's end.
   Goal (issue 15): 2 nodes ≥ 1.8× one.
2. Cost per trial slot with no-op work, parallelism 2, embedded Ray:
   - Ray Tune + OptunaSearch running a function that returns at once;
   - plain Ray tasks + Optuna ask/tell with the same no-op;
   - slimsweep: a tabular sweep with the least measurement (1 timed run per round, 1 round,
     no quiet phase); its cost is the slot time per trial less what the trial's own phases
     (prepare, compress, evaluate, latency, statistics) took, so the MLflow child run, the
     tell, Ray's dispatch and the worker's setup are in it.
   Goal: ≤ 0.25 s per trial.

Usage:
  .venv/bin/python benchmarks/scaling.py > benchmarks/scaling.md
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
TABULAR = [
    f"hydra.searchpath=[file://{HERE / 'overhead_conf'}]",
    "task=tabular",
    "space=digits",
    "plugins=[overhead_task]",
    "runtime.latency.quiet_rounds=0",
]
NODE_TRIALS = 13  # the baseline and 12 more
NOOP_TRIALS = 40


def _study(runs: Path, name: str) -> optuna.Study:
    from slimsweep.sweeps.engine.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{runs}/optuna.db"))


def _slimsweep(args: list[str]) -> None:
    """From this folder: on a cluster it becomes the workers' working_dir, with the plugin."""
    command = [sys.executable, "-m", "slimsweep.sweeps.cli", "run", "--quiet", *args]
    env = {**os.environ, "PYTHONPATH": str(HERE)}  # overhead_task, as a plugin
    subprocess.run(command, cwd=HERE, check=True, env=env, stdout=sys.stderr)


def trials_per_hour(nodes: int, scratch: Path) -> float:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    runs = scratch / f"nodes-{nodes}"
    try:
        _slimsweep(
            [
                *TABULAR,
                f"sweep.dir={runs}",
                f"sweep.cache_dir={scratch / 'cache'}",
                "sweep.name=scaling",
                f"search.n_trials={NODE_TRIALS}",
                f"search.parallelism={nodes}",
                f"cluster.address={cluster.address}",
                "cluster.exclusive_latency=false",
                "runtime.latency.min_seconds=3",
            ]
        )
    finally:
        cluster.shutdown()
    trials = [t for t in _study(runs, "scaling").trials if t.number > 0]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials) / (end - start).total_seconds() * 3600


def _noop(config: dict) -> dict:
    return {"score": 0.0}


def tune_per_slot() -> float:
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        search = OptunaSearch(
            {"x": optuna.distributions.FloatDistribution(0, 1)}, metric="score", mode="max"
        )
        tuner = tune.Tuner(
            _noop,
            tune_config=tune.TuneConfig(
                search_alg=search, num_samples=NOOP_TRIALS, max_concurrent_trials=2
            ),
            run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp()),
        )
        start = time.perf_counter()
        tuner.fit()
        return (time.perf_counter() - start) * 2 / NOOP_TRIALS
    finally:
        ray.shutdown()


def ask_tell_per_slot() -> float:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        noop = ray.remote(num_cpus=1)(_noop)
        study = optuna.create_study(direction="maximize")
        ray.get(noop.remote({}))  # the worker up, as Tune's and slimsweep's are by then
        pending: dict = {}
        asked = 0
        start = time.perf_counter()
        while asked < NOOP_TRIALS or pending:
            while asked < NOOP_TRIALS and len(pending) < 2:
                trial = study.ask()
                pending[noop.remote({"x": trial.suggest_float("x", 0, 1)})] = trial
                asked += 1
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            study.tell(pending.pop(ref), ray.get(ref)["score"])
        return (time.perf_counter() - start) * 2 / NOOP_TRIALS
    finally:
        ray.shutdown()


def slimsweep_per_trial(scratch: Path) -> tuple[float, float]:
    """(slot time per trial, its cost outside the trial's own phases), medians aside."""
    runs = scratch / "noop"
    _slimsweep(
        [
            *TABULAR,
            f"sweep.dir={runs}",
            f"sweep.cache_dir={scratch / 'cache'}",
            "sweep.name=noop",
            f"search.n_trials={NOOP_TRIALS}",
            "search.parallelism=2",
            "runtime.latency.warmup=0",
            "runtime.latency.repeats=1",
            "runtime.latency.min_seconds=0",
            "runtime.latency.pair_rounds=1",
        ]
    )
    trials = [t for t in _study(runs, "noop").trials if t.number > 0]
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    slot = (end - start).total_seconds() * 2 / len(trials)
    work = statistics.mean(
        sum(phase_end - phase_start for _, phase_start, phase_end in t.user_attrs["phases"])
        for t in trials
    )
    return slot, slot - work


def main() -> None:
    from slimsweep.sweeps.engine.hardware import fingerprint

    with tempfile.TemporaryDirectory(prefix="slimsweep-scaling-") as folder:
        scratch = Path(folder)
        per_hour = {n: trials_per_hour(n, scratch) for n in (1, 2)}
        tune = tune_per_slot()
        ask_tell = ask_tell_per_slot()
        slot, outside = slimsweep_per_trial(scratch)
    print(f"# Scaling across Ray nodes ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    import ray

    print(f"Machine: {fingerprint()}; ray {ray.__version__}, optuna {optuna.__version__}.\n")
    print("## Trials per hour, 1 vs 2 nodes of one CPU (goal: 2 nodes ≥ 1.8× one)\n")
    print("| nodes | trials per hour |\n| ---: | ---: |")
    for nodes, rate in per_hour.items():
        print(f"| {nodes} | {rate:.0f} |")
    print(f"\n2 nodes / 1 node: **{per_hour[2] / per_hour[1]:.2f}×**\n")
    print("## Cost per trial slot, no-op work, parallelism 2 (goal: ≤ 0.25 s)\n")
    print("| loop | s per trial |\n| --- | ---: |")
    print(f"| Ray Tune + OptunaSearch, no-op | {tune:.3f} |")
    print(f"| plain Ray tasks + Optuna ask/tell, no-op | {ask_tell:.3f} |")
    print(f"| slimsweep, outside the trial's phases | {outside:.3f} |")
    print(f"| slimsweep, whole slot (tabular trial, least measurement) | {slot:.3f} |")


if __name__ == "__main__":
    main()
