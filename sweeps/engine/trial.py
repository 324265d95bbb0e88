"""One trial, run on a Ray worker: build the compressed model, export it, measure it.

Workers never open the study or the tracking store; they return what they measured and the
artifact's bytes, and the driver records both.
"""

import copy
import functools
import hashlib
import itertools
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slimsweep.sweeps.engine.worker import WorkerSpec, cached_task, set_up
from slimsweep.sweeps.errors import SlimsweepWarning, with_cause
from slimsweep.sweeps.results.keys import SAVED_BYTES_PREFIX
from slimsweep.sweeps.space import RecipeStep
from slimsweep.sweeps.task import SplitSummary


@dataclass(frozen=True)
class TrialRequest:
    number: int
    recipe: list[RecipeStep]
    worker: WorkerSpec
    cache_dir: str


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
    # A few rows of the latency inputs and the artifact's outputs for them (MLflow's example)
    example_inputs: dict[str, Any] = field(default_factory=dict)
    example_outputs: Any = None
    splits: list[SplitSummary] = field(default_factory=list)  # the data it was judged on
    warnings: list[str] = field(default_factory=list)  # what it did that the user should hear
    input_axes: dict[str, dict[int, str]] = field(default_factory=dict)  # dynamic in the artifact
    measured_as: dict[str, str] = field(default_factory=dict)  # the runtime's mode, precision...


@dataclass(frozen=True)
class _BaselineArtifact:
    """The baseline exported by this worker's runtime: every trial's latency is paired with
    it, and its size is where the first stage's saved bytes start."""

    size: int
    predict: Any
    folder: tempfile.TemporaryDirectory  # keeps the file while the worker lives


@dataclass(frozen=True)
class _Prepared:
    data: Any
    baseline: torch.nn.Module
    splits: list[SplitSummary]
    artifacts: dict[str, _BaselineArtifact] = field(default_factory=dict)  # per runtime config
    teachers: dict[str, torch.nn.Module] = field(default_factory=dict)  # per device

    def teacher_on(self, device: str) -> torch.nn.Module:
        """The baseline that fine-tuning distils from, on the device the stages compute on
        (copied there once per worker)."""
        if device == "cpu":
            return self.baseline
        if device not in self.teachers:
            self.teachers[device] = copy.deepcopy(self.baseline).to(device)
        return self.teachers[device]


def compute_device() -> str:
    """The trial's GPU when Ray gave it one (Ray hides the GPUs from a task that asks for
    none): fine-tuning and calibration run there, whatever runtime the artifact targets."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def _prepare(task_json: str, cache_dir: str) -> _Prepared:
    """Data and trained baseline, once per worker process (and trained once per node)."""
    from slimsweep.sweeps.task import load_baseline, load_task_data, summarise_split

    task = cached_task(task_json)
    data = load_task_data(task, Path(cache_dir))
    splits = [
        summarise_split(task.name, "eval", data.eval),
        summarise_split(task.name, "calibration", data.calibration),
    ]
    baseline = load_baseline(task, data, Path(cache_dir))
    return _Prepared(data, baseline, splits)


def run_trial(request: TrialRequest) -> TrialResult:
    """Never raises: a failure comes back as a result carrying its traceback."""
    try:
        return _run(request)
    except Exception as error:
        return TrialResult(request.number, error=with_cause(error, traceback.format_exc()))


def _run(request: TrialRequest) -> TrialResult:
    from slimsweep.compressors import STAGES, CompressedModel, StageContext
    from slimsweep.sweeps.engine.bench import time_paired
    from slimsweep.sweeps.task import evaluate_all

    started = time.perf_counter()
    worker = set_up(request.worker)
    task, runtime, lock = worker.task, worker.runtime, worker.lock
    with lock.compute("prepare"):
        prepared = _prepare(request.worker.task_json, request.cache_dir)
    data = prepared.data
    calibration = [inputs for inputs, _ in data.calibration]

    def artifact_bytes(model: CompressedModel, path: Path) -> bytes:
        runtime.export(model, worker.example, calibration, path, worker.axes)
        return path.read_bytes()

    def baseline_artifact() -> _BaselineArtifact:
        folder = tempfile.TemporaryDirectory(prefix="slimsweep-baseline-")
        path = Path(folder.name) / runtime.artifact_name
        size = len(artifact_bytes(CompressedModel(prepared.baseline), path))
        return _BaselineArtifact(size, runtime.load(path), folder)

    with (
        tempfile.TemporaryDirectory(prefix="slimsweep-trial-") as scratch,
        warnings.catch_warnings(record=True) as raised,
    ):
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", SlimsweepWarning)
        with lock.compute("compress"):
            model = CompressedModel(copy.deepcopy(prepared.baseline))
            device = compute_device()
            context = StageContext(data, request.number, task, prepared.teacher_on(device), device)
            path = Path(scratch) / runtime.artifact_name
            # The bytes each stage saves, from real artifacts exported after each stage (the
            # baseline's once per worker and runtime).
            runtime_key = repr(request.worker.runtime)
            if runtime_key not in prepared.artifacts:
                prepared.artifacts[runtime_key] = baseline_artifact()
            baseline = prepared.artifacts[runtime_key]
            sizes = [baseline.size]
            for step in request.recipe:
                model = STAGES.get(step.stage).run(model, step.params, context)
                sizes.append(len(artifact_bytes(model, path)))
            artifact = path.read_bytes() if request.recipe else artifact_bytes(model, path)
            predict = runtime.load(path)
            scores = evaluate_all(task, predict, data.eval)
            example = {name: rows[:2] for name, rows in worker.latency_inputs.items()}
            example_outputs = predict(example)
        with lock.measure("latency"):
            times = time_paired(
                predict,
                baseline.predict,
                worker.latency_inputs,
                request.worker.runtime.latency,
                on_calling_thread=getattr(runtime, "on_calling_thread", lambda: False)(),
            )
        with lock.compute("statistics"):  # the next trial's window need not wait for these
            latency = times.statistics()
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
            f"{SAVED_BYTES_PREFIX}{step.slot}": float(before - after)
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
        worker.hardware,
        lock.phases,
        example_inputs=example,
        example_outputs=example_outputs,
        splits=prepared.splits,
        warnings=list(dict.fromkeys(str(w.message) for w in raised)),
        input_axes=worker.axes,
        measured_as=runtime.measured_as(),
    )
