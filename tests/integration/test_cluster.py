"""Sweeps on a real multi-raylet Ray cluster on 127.0.0.1 (ray.cluster_utils.Cluster, as
Ray's own tests start one): a trial compresses on any node and is measured only on the node
that carries the hardware target's resource; a plugin that lives only in the driver's folder
reaches every node through Ray's runtime_env."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from slimsweep.sweeps.engine.study import open_storage

pytestmark = pytest.mark.integration

RUN = (sys.executable, "-m", "slimsweep.sweeps.cli", "run")

PLUGIN = '''
"""A stage that leaves the model as it is and records where its module was loaded from."""
from dataclasses import dataclass

from slimsweep.compressors import CompressedModel, StageContext, register_stage


@dataclass(frozen=True)
class MarkConfig:
    pass


@register_stage("mark", MarkConfig)
def mark(model: CompressedModel, config: MarkConfig, ctx: StageContext) -> CompressedModel:
    model.metrics["plugin_from_ray_working_dir"] = float("runtime_resources" in __file__)
    return model
'''


def test_trials_compress_on_both_nodes_and_are_timed_on_the_target_only(
    cluster, tmp_path: Path
) -> None:
    address, head, target = cluster
    driver_folder = tmp_path / "driver"
    driver_folder.mkdir()
    (driver_folder / "mark_stage.py").write_text(PLUGIN)
    args = [
        f"sweep.dir={tmp_path / 'runs'}",
        f"sweep.cache_dir={tmp_path / 'cache'}",
        "sweep.name=cluster",
        "search.n_trials=6",
        "search.parallelism=2",
        f"cluster.address={address}",
        "cluster.measure_on={target_cpu: 1}",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        "runtime.latency.quiet_rounds=1",
        "plugins=[mark_stage]",
        "space.recipe.prune.stage.choices=[none, mark]",
        "space.enqueue=[{prune: {stage: mark}, quantize: {precision: fp32}},"
        "{prune: {stage: mark}, quantize: {precision: int8_dynamic, per_channel: true}}]",
    ]
    run = subprocess.run(
        [*RUN, *args],
        cwd=driver_folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(
        study_name="cluster", storage=open_storage(f"sqlite:///{tmp_path / 'runs'}/optuna.db")
    )
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6, [(t.number, t.state, t.user_attrs.get("failure")) for t in study.trials]
    nodes = [t.user_attrs["nodes"] for t in done]
    assert {n["measure"] for n in nodes} == {target}
    assert {n["compress"] for n in nodes} == {head, target}
    marked = [t for t in done if "mark" in t.user_attrs["recipe"]]
    assert len(marked) >= 2
    assert all(t.user_attrs["metrics"]["plugin_from_ray_working_dir"] == 1.0 for t in marked)
    # one baseline file for the whole sweep, its sha256 in the study and on the sweep's run
    (baseline,) = (tmp_path / "cache").glob("digits*.pt")
    sha256 = hashlib.sha256(baseline.read_bytes()).hexdigest()
    assert study.user_attrs["baseline_sha256"] == sha256
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'runs'}/mlflow.db")
    (sweep_run,) = client.search_runs(
        [client.get_experiment_by_name("cluster").experiment_id], "tags.`slimsweep.role` = 'sweep'"
    )
    assert sweep_run.data.tags["slimsweep.baseline_sha256"] == sha256


SLOW_PLUGIN = '''
"""A stage that says on which node it runs (a file named by the node's id), then takes a
few seconds: long enough for a test to kill that node under it."""
import os
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from slimsweep.compressors import CompressedModel, StageContext, register_stage


@dataclass(frozen=True)
class SlowConfig:
    seconds: float = 4.0


@register_stage("slow", SlowConfig)
def slow(model: CompressedModel, config: SlowConfig, ctx: StageContext) -> CompressedModel:
    marks = Path(os.environ["SLIMSWEEP_TEST_MARKS"])
    (marks / ray.get_runtime_context().get_node_id()).touch()
    time.sleep(config.seconds)
    return model
'''
KILLED_SWEEP = [
    "sweep.name=killed",
    "search.n_trials=6",
    "search.parallelism=2",
    "cluster.measure_on={target_cpu: 1}",
    "runtime.latency.warmup=2",
    "runtime.latency.repeats=10",
    "runtime.latency.min_seconds=0.5",
    "runtime.latency.quiet_rounds=0",
    "plugins=[slow_stage]",
    "space.recipe.prune.stage.choices=[none, slow]",
    # three different slow recipes (a repeated one would be answered, not run again)
    "+space.recipe.prune.seconds={choices: [4.0, 4.5, 5.0], when: {stage: slow}}",
    "space.enqueue=["
    + ", ".join(
        f"{{prune: {{stage: slow, seconds: {s}}}, quantize: {{precision: fp32}}}}"
        for s in (4.0, 4.5, 5.0)
    )
    + "]",
]


def test_a_worker_node_killed_mid_sweep_loses_no_trial(tmp_path: Path) -> None:
    """Ray runs the lost node's tasks again elsewhere (cluster.max_retries); every trial ends
    recorded, in both stores, and the sweep completes."""
    import mlflow
    from ray.cluster_utils import Cluster

    marks, driver_folder, runs = tmp_path / "marks", tmp_path / "driver", tmp_path / "runs"
    marks.mkdir()
    driver_folder.mkdir()
    (driver_folder / "slow_stage.py").write_text(SLOW_PLUGIN)
    os.environ["SLIMSWEEP_TEST_MARKS"] = str(marks)  # the raylets and their workers inherit it
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # runs no trial
    nodes.add_node(num_cpus=1, resources={"target_cpu": 1})
    victim = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    where = [f"sweep.dir={runs}", f"sweep.cache_dir={tmp_path / 'cache'}"]
    try:
        driver = subprocess.Popen(
            [
                *RUN,
                *where,
                f"cluster.address={nodes.address}",
                *KILLED_SWEEP,
            ],
            cwd=driver_folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while not (marks / victim.node_id).exists():  # a slow stage runs on the victim
            assert time.monotonic() < deadline and driver.poll() is None, "no trial reached it"
            time.sleep(0.2)
        nodes.remove_node(victim)  # kills its raylet and the workers on it, mid-trial
        _, stderr = driver.communicate(timeout=600)
    finally:
        nodes.shutdown()
    assert driver.returncode == 0, stderr[-3000:]
    storage = open_storage(f"sqlite:///{runs}/optuna.db")
    study = optuna.load_study(study_name="killed", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs}/mlflow.db")
    experiment = client.get_experiment_by_name("killed")
    trial_runs = client.search_runs([experiment.experiment_id], "tags.`slimsweep.role` = 'trial'")
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 6


def test_a_target_no_node_carries_is_refused_before_any_trial(cluster, tmp_path: Path) -> None:
    address, _, _ = cluster
    run = subprocess.run(
        [
            *RUN,
            f"sweep.dir={tmp_path}",
            "sweep.name=nowhere",
            f"cluster.address={address}",
            "cluster.measure_on={target_xeon: 1}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert "no node of the Ray cluster has what a measuring task needs" in run.stderr
    assert "target_xeon 1" in run.stderr


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_task_whose_only_node_left_is_given_up_with_the_reason() -> None:
    """Ray would keep it queued forever: the sweep must record it and go on."""
    import ray
    from ray.cluster_utils import Cluster

    from slimsweep.sweeps.engine.ray_pool import RayPool
    from slimsweep.sweeps.settings import ClusterSettings

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    only = nodes.add_node(num_cpus=1, resources={"only_here": 1})
    nodes.wait_for_nodes()
    try:
        placed = {"num_cpus": 1, "resources": {"only_here": 1}}
        pool = RayPool(ClusterSettings(address=nodes.address), {"it": placed}, stranded_after=1)
        nodes.remove_node(only)
        pool.submit("stranded", _sleep, 0.1, placed)
        pool.submit("fine", _sleep, 0.1, {"num_cpus": 1})
        results = {key: (result, why) for key, result, why in (pool.next_done(), pool.next_done())}
    finally:
        ray.shutdown()
        nodes.shutdown()
    assert results["fine"] == (0.1, None)
    result, why = results["stranded"]
    assert result is None
    assert "no live node of the Ray cluster has what this task needs (CPU 1, only_here 1)" in why
