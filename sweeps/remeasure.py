"""The quiet phase: the front's artifacts re-measured alone on one node, interleaved.

Rounds go A B C A B C ..., so slow drift of the machine (thermal, other tenants) hits every
candidate alike; the node's measurement lock is held for the whole phase.
"""

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimsweep.sweeps.bench import LatencyStats, summarise, time_runs
from slimsweep.sweeps.plugins import Plugins
from slimsweep.sweeps.settings import RuntimeConfig


@dataclass(frozen=True)
class Artifact:
    trial: int
    name: str
    content: bytes
    sha256: str


@dataclass(frozen=True)
class RemeasureRequest:
    artifacts: list[Artifact]
    task_config: dict[str, Any]
    runtime: RuntimeConfig
    plugins: Plugins = Plugins()
    exclusive_latency: bool = True


@dataclass(frozen=True)
class RemeasureResult:
    latency: dict[int, LatencyStats]
    hardware: str


def remeasure(request: RemeasureRequest) -> RemeasureResult:
    from slimsweep.sweeps.hardware import fingerprint
    from slimsweep.sweeps.node_lock import NodeLock
    from slimsweep.sweeps.runtimes import build_runtime
    from slimsweep.sweeps.task import build_task

    request.plugins.load()
    settings = request.runtime.latency
    inputs = {k: v.numpy() for k, v in build_task(request.task_config).latency_inputs().items()}
    runtime = build_runtime(request.runtime)
    samples: dict[int, list[np.ndarray]] = {a.trial: [] for a in request.artifacts}
    with tempfile.TemporaryDirectory(prefix="slimsweep-quiet-") as scratch:
        predictors = {}
        for artifact in request.artifacts:
            if hashlib.sha256(artifact.content).hexdigest() != artifact.sha256:
                raise ValueError(f"artifact of trial {artifact.trial} does not match its sha256")
            path = Path(scratch) / str(artifact.trial) / artifact.name
            path.parent.mkdir()
            path.write_bytes(artifact.content)
            predictors[artifact.trial] = runtime.load(path)
        with NodeLock(enabled=request.exclusive_latency).measure("quiet"):
            for predict in predictors.values():
                time_runs(predict, inputs, settings.warmup, 0)
            round_seconds = settings.min_seconds / settings.quiet_rounds
            for _ in range(settings.quiet_rounds):
                for trial, predict in predictors.items():
                    runs = time_runs(predict, inputs, 1, settings.repeats, round_seconds)
                    samples[trial].append(runs)
    latency = {trial: summarise(np.concatenate(runs)) for trial, runs in samples.items()}
    return RemeasureResult(latency, fingerprint())
