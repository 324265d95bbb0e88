"""One trial on Ray workers, in two phases: compress (the stages, then the export) and
measure (load, evaluate, time the artifact beside the baseline's). Locally both run in one
task; on a cluster with a hardware target (`cluster.measure_on`) the first runs on any node
with the trial's resources, GPUs included, and the second on a target node.

Workers never open the study or the tracking store; they return what they measured and the
artifact's bytes, and the driver records both.
"""

import contextlib
import copy
import functools
import hashlib
import itertools
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slimsweep.sweeps.engine.baseline import ShippedBaseline, place
from slimsweep.sweeps.engine.worker import Worker, WorkerSpec, cached_task, set_up
from slimsweep.sweeps.errors import SlimsweepWarning, with_cause
from slimsweep.sweeps.results.keys import SAVED_BYTES_PREFIX
from slimsweep.sweeps.runtimes.artifact import artifact_size, read_artifact, write_artifact
from slimsweep.sweeps.space import RecipeStep
from slimsweep.sweeps.task import SplitSummary


@dataclass(frozen=True)
class TrialRequest:
    number: int
    recipe: list[RecipeStep]
    worker: WorkerSpec
    cache_dir: str
    baseline: ShippedBaseline | None = None  # the sweep's file; None: this node's own cache


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
    # what the artifact takes: per input, each axis's name where it is dynamic, else its size
    input_shapes: dict[str, list[int | str]] = field(default_factory=dict)
    measured_as: dict[str, str] = field(default_factory=dict)  # the runtime's mode, precision...
    nodes: dict[str, str] = field(default_factory=dict)  # phase → the Ray node it ran on
    stopped_early: str | None = None  # why fine-tuning stopped the trial (recorded PRUNED)
    reports: list[tuple[int, float]] = field(default_factory=list)  # (step, quality) it read


@dataclass(frozen=True)
class Compressed:
    """What the compress phase hands the measure phase."""

    artifact: bytes
    metrics: dict[str, float]  # sizes, parameters and what the stages measured
    phases: list[tuple[str, float, float]]
    warnings: list[str]
    node: str
    started: float  # time.time() when the trial began


@dataclass(frozen=True)
class MeasureRequest:
    trial: TrialRequest
    compressed: Compressed


@dataclass
class _BaselineArtifact:
    """The baseline exported by this worker's runtime: every trial's latency is paired with
    it, and its size is where the first stage's saved bytes start. Loaded (for a GPU mode,
    compiled) only where a trial is measured."""

    size: int
    path: Path
    runtime: Any
    folder: tempfile.TemporaryDirectory  # keeps the file while the worker lives

    @functools.cached_property
    def predict(self) -> Any:
        return self.runtime.load(self.path)


@dataclass(frozen=True)
class _Prepared:
    data: Any
    baseline: torch.nn.Module
    splits: list[SplitSummary]
    artifacts: dict[str, _BaselineArtifact] = field(default_factory=dict)  # per runtime config
    teachers: dict[str, torch.nn.Module] = field(default_factory=dict)  # per device
    qualities: dict[str, float] = field(default_factory=dict)  # the baseline's, per device

    def teacher_on(self, device: str) -> torch.nn.Module:
        """The baseline that fine-tuning distils from, on the device the stages compute on
        (copied there once per worker)."""
        if device == "cpu":
            return self.baseline
        if device not in self.teachers:
            self.teachers[device] = copy.deepcopy(self.baseline).to(device)
        return self.teachers[device]

    def early_stop(self, task: Any, spec: WorkerSpec, device: str) -> Any:
        """The stages' `after_step` that stops a trial whose quality falls below the floor,
        or None when the sweep never stops one early."""
        from slimsweep.sweeps.engine.early_stop import EVAL_BATCHES, EarlyStop, quality_of

        if not spec.early_stop.floor:
            return None
        if device not in self.qualities:  # the baseline read as the trials will be
            batches = self.data.eval[:EVAL_BATCHES]
            self.qualities[device] = quality_of(task, self.teacher_on(device), batches)
        return EarlyStop(task, self.data.eval, self.qualities[device], spec.early_stop)

    def baseline_artifact(self, worker: Worker, config: Any) -> _BaselineArtifact:
        """The baseline exported by this runtime config, once per worker process."""
        from slimsweep.compressors import CompressedModel
        from slimsweep.sweeps.runtimes import build_runtime

        key = repr(config)
        # a later sweep of the same driver removed the last one's scratch folder, files too
        if key not in self.artifacts or not self.artifacts[key].path.exists():
            runtime = worker.runtime if config == worker.runtime.config else build_runtime(config)
            folder = tempfile.TemporaryDirectory(prefix="slimsweep-baseline-")
            path = Path(folder.name) / runtime.artifact_name
            _export(worker, self, CompressedModel(self.baseline), path, runtime)
            self.artifacts[key] = _BaselineArtifact(artifact_size(path), path, runtime, folder)
        return self.artifacts[key]


def compute_device(spec: WorkerSpec) -> str:
    """The trial's GPU when it asked Ray for one: fine-tuning and calibration run there,
    whatever runtime the artifact targets. (Ray 2.60 no longer hides the GPUs from a task
    that asks for none, so what the process sees does not say what it was given.)"""
    return "cuda" if spec.gpu and torch.cuda.is_available() else "cpu"


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


def _prepared_for(request: TrialRequest) -> _Prepared:
    """Data and baseline for a trial: the sweep's baseline file placed in this node's cache
    first, when the driver shipped one."""
    if request.baseline is not None:
        place(request.baseline, request.cache_dir)
    return _prepare(request.worker.task_json, request.cache_dir)


def _export(
    worker: Worker, prepared: _Prepared, model: Any, path: Path, runtime: Any = None
) -> int:
    """Export the model to the artifact at `path`; returns its size in bytes."""
    calibration = [inputs for inputs, _ in prepared.data.calibration]
    (runtime or worker.runtime).export(model, worker.example, calibration, path, worker.axes)
    return artifact_size(path)


def _node() -> str:
    """The Ray node this runs on ("" outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _failure(number: int, error: Exception) -> TrialResult:
    from slimsweep.compressors.base import StoppedEarly

    if isinstance(error, StoppedEarly):
        return TrialResult(number, stopped_early=error.reason, reports=error.reports)
    return TrialResult(number, error=with_cause(error, traceback.format_exc()))


def run_trial(request: TrialRequest) -> TrialResult:
    """Both phases in one task. Never raises: a failure comes back as a result carrying its
    traceback."""
    try:
        worker = set_up(request.worker)
        return _measure(MeasureRequest(request, _compress(request, worker)), worker)
    except Exception as error:
        return _failure(request.number, error)


def compress_trial(request: TrialRequest) -> "Compressed | TrialResult":
    """The stages and the export; a failure comes back as a failed TrialResult."""
    try:
        return _compress(request, set_up(request.worker))
    except Exception as error:
        return _failure(request.number, error)


def measure_trial(request: MeasureRequest) -> TrialResult:
    """Load, evaluate and time the compressed artifact; never raises."""
    try:
        return _measure(request, set_up(request.trial.worker))
    except Exception as error:
        return _failure(request.trial.number, error)


@contextlib.contextmanager
def _collecting_warnings() -> Iterator[list[str]]:
    """What a phase raised as SlimsweepWarning, once each (other libraries' warnings are
    noise to a sweep's user)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", SlimsweepWarning)
        yield messages
    messages.extend(dict.fromkeys(str(w.message) for w in raised))


def _compress(request: TrialRequest, worker: Worker) -> Compressed:
    from slimsweep.compressors import STAGES, CompressedModel, StageContext

    started = time.time()
    task, lock = worker.task, worker.lock
    with lock.compute("prepare"):
        prepared = _prepared_for(request)
    with (
        tempfile.TemporaryDirectory(prefix="slimsweep-trial-") as scratch,
        _collecting_warnings() as raised,
        lock.compute("compress"),
    ):
        model = CompressedModel(copy.deepcopy(prepared.baseline))
        device = compute_device(request.worker)
        context = StageContext(
            prepared.data,
            request.number,
            task,
            prepared.teacher_on(device),
            device,
            prepared.early_stop(task, request.worker, device),
        )
        path = Path(scratch) / worker.runtime.artifact_name
        # The bytes each stage saves, from real artifacts exported after each stage (the
        # baseline's once per worker and runtime).
        sizes = [prepared.baseline_artifact(worker, request.worker.runtime).size]
        for step in request.recipe:
            model = STAGES.get(step.stage).run(model, step.params, context)
            sizes.append(_export(worker, prepared, model, path))
        size = sizes[-1] if request.recipe else _export(worker, prepared, model, path)
        artifact = read_artifact(path)
    parameters = list(model.module.parameters())
    metrics = {
        "size_bytes": float(size),
        "param_count": float(sum(p.numel() for p in parameters)),
        "flops": _flops(model.module, worker.example),
        "zero_fraction": float(
            sum((p == 0).sum() for p in parameters) / sum(p.numel() for p in parameters)
        ),
        **model.metrics,
        **{
            f"{SAVED_BYTES_PREFIX}{step.slot}": float(before - after)
            for step, (before, after) in zip(request.recipe, itertools.pairwise(sizes), strict=True)
        },
    }
    return Compressed(artifact, metrics, list(lock.phases), raised, _node(), started)


def _flops(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """Floating-point operations of one forward pass on the latency batch (matmuls and
    convolutions, as torch's FlopCounterMode counts them, of the float module before its
    runtime packs it): what the architecture costs, whatever the runtime makes of it."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module.eval()(**inputs)
    return float(counter.get_total_flops())


def _input_shapes(
    inputs: dict[str, Any], axes: dict[str, dict[int, str]]
) -> dict[str, list[int | str]]:
    return {
        name: [axes.get(name, {}).get(axis, size) for axis, size in enumerate(rows.shape)]
        for name, rows in inputs.items()
    }


def _measure(request: MeasureRequest, worker: Worker) -> TrialResult:
    from slimsweep.sweeps.engine.bench import time_paired
    from slimsweep.sweeps.task import evaluate_all

    trial, compressed = request.trial, request.compressed
    task, runtime, lock = worker.task, worker.runtime, worker.lock
    with lock.compute("prepare"):  # done once per worker: cached after the first
        prepared = _prepared_for(trial)
    with (
        tempfile.TemporaryDirectory(prefix="slimsweep-measure-") as scratch,
        _collecting_warnings() as raised,
    ):
        with lock.compute("evaluate"):
            baseline = prepared.baseline_artifact(worker, trial.worker.paired_with)
            path = Path(scratch) / runtime.artifact_name
            write_artifact(compressed.artifact, path)
            predict = runtime.load(path)
            measured_as = runtime.measured_as(path)
            scores = evaluate_all(task, predict, prepared.data.eval)
            example = {name: rows[:2] for name, rows in worker.latency_inputs.items()}
            example_outputs = predict(example)
            baseline_predict = baseline.predict
        with lock.measure("latency"):
            times = time_paired(
                predict,
                baseline_predict,
                worker.latency_inputs,
                trial.worker.paired_with.latency,
                on_calling_thread=runtime.on_calling_thread()
                and baseline.runtime.on_calling_thread(),
            )
        with lock.compute("statistics"):  # the next trial's window need not wait for these
            latency = times.statistics()
    metrics = {
        **scores,
        **compressed.metrics,
        **latency.as_metrics(),
        "trial_seconds": time.time() - compressed.started,
    }
    node = _node()
    return TrialResult(
        trial.number,
        metrics,
        runtime.artifact_name,
        compressed.artifact,
        hashlib.sha256(compressed.artifact).hexdigest(),
        worker.hardware,
        [*compressed.phases, *(p for p in lock.phases if p not in compressed.phases)],
        example_inputs=example,
        example_outputs=example_outputs,
        splits=prepared.splits,
        warnings=list(dict.fromkeys([*compressed.warnings, *raised])),
        input_shapes=_input_shapes(worker.latency_inputs, runtime.artifact_axes(worker.axes)),
        measured_as=measured_as,
        nodes={"compress": compressed.node, "measure": node},
    )
