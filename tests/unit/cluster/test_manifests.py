"""cluster/kuberay.yaml agrees with what it runs: its sweep command composes into a valid
config, its images are the Dockerfile's, and its target group carries the resource that
`cluster=ray` measures on."""

import re
from pathlib import Path

import yaml

from slimsweep.sweeps.config import compose, load_settings

CLUSTER = Path(__file__).parents[3] / "cluster"


def _manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text())}


def test_the_ray_jobs_sweep_command_is_a_valid_config(monkeypatch) -> None:
    entrypoint = _manifests()["RayJob"]["spec"]["entrypoint"].split()
    assert entrypoint[:3] == ["slimsweep", "run", "cluster=ray"]
    secret = _manifests()["Secret"]["stringData"]
    # the variables the pod gets from the Secret, as its shell expands them
    overrides = [re.sub(r"\$(\w+)", lambda m: secret[m.group(1)], a) for a in entrypoint[2:]]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret["MLFLOW_TRACKING_URI"])  # envFrom
    settings = load_settings(overrides)
    assert settings.sweep.storage.startswith("postgresql://")
    assert settings.tracking.uri == secret["MLFLOW_TRACKING_URI"]
    assert settings.tracking.artifact_root is None
    assert settings.cluster.address == "auto"
    # the spool and the baseline cache are on the head's volume, which outlives the pod
    head = _manifests()["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]
    mounts = [m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])]
    assert settings.sweep.dir in mounts


def test_the_target_group_carries_the_resource_trials_are_measured_on() -> None:
    measure_on = compose(["cluster=ray"])["cluster"]["measure_on"]
    groups = {g["groupName"]: g for g in _manifests()["RayCluster"]["spec"]["workerGroupSpecs"]}
    declared = yaml.safe_load(yaml.safe_load(groups["target"]["rayStartParams"]["resources"]))
    assert declared == measure_on
    assert groups["target"]["maxReplicas"] == 1  # one hardware fingerprint per sweep
    head = _manifests()["RayCluster"]["spec"]["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0"


def test_every_pod_runs_the_dockerfiles_image() -> None:
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    tags = set(re.findall(r"-t (\S+)", dockerfile))
    spec = _manifests()["RayCluster"]["spec"]
    pods = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    images = {c["image"] for pod in pods for c in pod["template"]["spec"]["containers"]}
    assert images <= tags, images - tags
    assert "torch==2.13.0" in dockerfile and "[minilm,cluster]" in dockerfile
