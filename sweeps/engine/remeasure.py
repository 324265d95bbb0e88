"""The quiet phase's worker: the front's artifacts re-measured alone on one node, interleaved.

Rounds go A B C A B C ..., so slow drift of the machine (thermal, other tenants) hits every
candidate alike; the node's measurement lock is held for the whole phase.
"""

import hashlib
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimsweep.sweeps.engine.bench import LatencyStats, summarise, time_runs
from slimsweep.sweeps.engine.worker import WorkerSpec, set_up
from slimsweep.sweeps.runtimes import build_runtime
from slimsweep.sweeps.runtimes.artifact import write_artifact
from slimsweep.sweeps.settings import LatencySettings, RuntimeConfig
from slimsweep.sweeps.task import Predict


@dataclass(frozen=True)
class Artifact:
    trial: int
    name: str
    content: bytes
    sha256: str  # recorded when the trial measured it
    runtime: RuntimeConfig | None = None  # the one the space chose for it; None: the sweep's


@dataclass(frozen=True)
class RemeasureRequest:
    artifacts: list[Artifact]
    worker: WorkerSpec


@dataclass(frozen=True)
class RemeasureResult:
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    hardware: str = ""
    error: str | None = None  # the traceback, when the phase failed


def remeasure(request: RemeasureRequest) -> RemeasureResult:
    """Never raises: a failure comes back as a result carrying its traceback."""
    try:
        return _remeasure(request)
    except Exception:
        return RemeasureResult(error=traceback.format_exc())


def _remeasure(request: RemeasureRequest) -> RemeasureResult:
    worker = set_up(request.worker)
    with tempfile.TemporaryDirectory(prefix="slimsweep-quiet-") as scratch:
        predictors = {}
        for artifact in request.artifacts:
            if hashlib.sha256(artifact.content).hexdigest() != artifact.sha256:
                raise ValueError(
                    f"the artifact of trial {artifact.trial} does not match the sha256 recorded "
                    "when it was measured; refusing to re-measure it"
                )
            path = Path(scratch) / str(artifact.trial) / artifact.name
            path.parent.mkdir()
            write_artifact(artifact.content, path)
            runtime = build_runtime(artifact.runtime) if artifact.runtime else worker.runtime
            predictors[artifact.trial] = runtime.load(path)
        with worker.lock.measure("quiet"):
            samples = interleaved_runs(
                predictors, worker.latency_inputs, request.worker.runtime.latency
            )
    latency = {trial: summarise(np.concatenate(runs)) for trial, runs in samples.items()}
    return RemeasureResult(latency, worker.hardware)


def interleaved_runs(
    predictors: dict[int, Predict], inputs: dict[str, np.ndarray], settings: LatencySettings
) -> dict[int, list[np.ndarray]]:
    """Timed runs of each candidate, in rounds that visit every candidate once, in order."""
    for predict in predictors.values():
        time_runs(predict, inputs, settings.warmup, 0)
    samples: dict[int, list[np.ndarray]] = {trial: [] for trial in predictors}
    round_seconds = settings.min_seconds / settings.quiet_rounds
    for _ in range(settings.quiet_rounds):
        for trial, predict in predictors.items():
            samples[trial].append(time_runs(predict, inputs, 1, settings.repeats, round_seconds))
    return samples
