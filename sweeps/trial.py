"""One trial, run on a Ray worker: build the compressed model, export it, measure it.

Workers never open the study or the tracking store; they return what they measured and the
artifact's bytes, and the driver records both.
"""

import copy
import functools
import hashlib
import itertools
import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slimsweep.sweeps.plugins import Plugins
from slimsweep.sweeps.settings import RuntimeConfig
from slimsweep.sweeps.space import RecipeStep


@dataclass(frozen=True)
class TrialRequest:
    number: int
    recipe: list[RecipeStep]
    task_config: dict[str, Any]
    runtime: RuntimeConfig
    cache_dir: str
    plugins: Plugins = Plugins()
    exclusive_latency: bool = True


@dataclass(frozen=True)
class TrialResult:
    number: int
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_name: str = ""
    artifact: bytes = b""
    sha256: str = ""
    hardware: str = ""  # fingerprint of the node that measured the latency
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (phase, start, end)
    error: str | None = None  # the traceback, when the trial failed


@dataclass(frozen=True)
class _Prepared:
    task: Any
    data: Any
    baseline: torch.nn.Module
    baseline_bytes: dict[str, int] = field(default_factory=dict)  # per runtime config


@functools.cache
def _prepare(task_json: str, cache_dir: str) -> _Prepared:
    """Task, data and trained baseline, once per worker process (and trained once per node)."""
    from slimsweep.sweeps.task import build_task, load_baseline

    task_config = json.loads(task_json)
    task = build_task(task_config)
    data = task.load_data()
    return _Prepared(task, data, load_baseline(task, task_config, data, Path(cache_dir)))


def run_trial(request: TrialRequest) -> TrialResult:
    """Never raises: a failure comes back as a result carrying its traceback."""
    try:
        return _run(request)
    except Exception:
        return TrialResult(request.number, error=traceback.format_exc())


def _run(request: TrialRequest) -> TrialResult:
    from slimsweep.compressors import STAGES, CompressedModel, StageContext
    from slimsweep.sweeps.bench import measure_latency
    from slimsweep.sweeps.hardware import fingerprint
    from slimsweep.sweeps.node_lock import NodeLock
    from slimsweep.sweeps.runtimes import build_runtime
    from slimsweep.sweeps.task import evaluate_all

    started = time.perf_counter()
    lock = NodeLock(enabled=request.exclusive_latency)
    request.plugins.load()
    with lock.compute("prepare"):
        prepared = _prepare(json.dumps(request.task_config, sort_keys=True), request.cache_dir)
    task, data = prepared.task, prepared.data
    runtime = build_runtime(request.runtime)
    latency_inputs = task.latency_inputs()
    numpy_inputs = {name: tensor.numpy() for name, tensor in latency_inputs.items()}
    calibration = [inputs for inputs, _ in data.calibration]

    def artifact_bytes(model: CompressedModel, path: Path) -> bytes:
        runtime.export(model, latency_inputs, calibration, path)
        return path.read_bytes()

    with tempfile.TemporaryDirectory(prefix="slimsweep-trial-") as scratch:
        with lock.compute("compress"):
            model = CompressedModel(copy.deepcopy(prepared.baseline))
            context = StageContext(data, request.number, task, prepared.baseline)
            path = Path(scratch) / runtime.artifact_name
            # The bytes each stage saves, from real artifacts exported after each stage (the
            # baseline's once per worker and runtime).
            runtime_key = repr(request.runtime)
            if runtime_key not in prepared.baseline_bytes:
                prepared.baseline_bytes[runtime_key] = len(artifact_bytes(model, path))
            sizes = [prepared.baseline_bytes[runtime_key]]
            for step in request.recipe:
                model = STAGES.get(step.stage).run(model, step.params, context)
                sizes.append(len(artifact_bytes(model, path)))
            artifact = path.read_bytes() if request.recipe else artifact_bytes(model, path)
            predict = runtime.load(path)
            scores = evaluate_all(task, predict, data.eval)
        with lock.measure("latency"):
            latency = measure_latency(predict, numpy_inputs, request.runtime.latency)
    parameters = list(model.module.parameters())
    metrics = {
        **scores,
        "size_bytes": float(len(artifact)),
        **latency.as_metrics(),
        "param_count": float(sum(p.numel() for p in parameters)),
        "zero_fraction": float(
            sum((p == 0).sum() for p in parameters) / sum(p.numel() for p in parameters)
        ),
        **model.metrics,
        **{
            f"saved_bytes/{step.slot}": float(before - after)
            for step, (before, after) in zip(request.recipe, itertools.pairwise(sizes), strict=True)
        },
        "trial_seconds": time.perf_counter() - started,
    }
    return TrialResult(
        request.number,
        metrics,
        runtime.artifact_name,
        artifact,
        hashlib.sha256(artifact).hexdigest(),
        fingerprint(),
        lock.phases,
    )
