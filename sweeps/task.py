"""The task protocol: what is compressed and how it is judged.

A task is any `_target_` builder returning an object with these members. slimsweep trains
(or loads) the baseline once per node and caches its weights, keyed by the task's config.

Two optional members serve the stages that fine-tune (distillation, QAT, iterative pruning):
`loss(outputs, targets) -> Tensor`, the loss on the task's labels, and
`distillation_loss(student, teacher, temperature) -> Tensor`, how a student's outputs are
matched to the teacher's (default: soft targets on logits). Without `loss`, fine-tuning
distils from the teacher alone. `extra_scores(outputs, targets) -> dict[str, float]` adds
quality numbers that are logged beside the metric. `data_cache_key() -> str` caches the
task's data on each node like the baseline (see `load_task_data`).
`dynamic_axes() -> {input: {axis: name}}` names input axes besides the batch that vary (a
sentence's length), so that artifacts take any size there (`runtimes/shapes.py`).
`architecture_family: str` names the registered architecture family whose students the
task's model can teach (`compressors/architecture.py`): a space's `arch` slot may then
search that family's shapes.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from slimsweep.sweeps.errors import ConfigError

Inputs = dict[str, torch.Tensor]
Batch = tuple[Inputs, torch.Tensor]  # named model inputs, and the targets the metric needs
Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class TaskData:
    """Fixed, disjoint splits: train (fine-tuning), calibration (PTQ statistics), eval."""

    train: list[Batch]
    calibration: list[Batch]
    eval: list[Batch]


@dataclass(frozen=True)
class SplitSummary:
    """A data split as MLflow records a dataset input: what it is, its digest, its size."""

    name: str  # e.g. "digits_cnn-eval"
    context: str  # eval | calibration
    digest: str  # sha256 of its inputs and targets, first 16 hex digits
    rows: int


def summarise_split(task_name: str, context: str, batches: list[Batch]) -> SplitSummary:
    digest = hashlib.sha256()
    for inputs, targets in batches:
        for name in sorted(inputs):
            digest.update(name.encode())
            digest.update(inputs[name].numpy().tobytes())
        digest.update(targets.numpy().tobytes())
    rows = sum(int(targets.shape[0]) for _, targets in batches)
    return SplitSummary(f"{task_name}-{context}", context, digest.hexdigest()[:16], rows)


@runtime_checkable
class Task(Protocol):
    name: str
    metric: str  # name of the quality metric; higher is better

    def build_model(self) -> torch.nn.Module:
        """The baseline's architecture, with whatever weights it starts from."""

    def train_baseline(self, model: torch.nn.Module, data: TaskData) -> None:
        """Fit the baseline in place (or do nothing for a pretrained model); runs once a node."""

    def load_data(self) -> TaskData: ...

    def latency_inputs(self) -> Inputs:
        """The fixed batch that latency is measured on."""

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The quality metric over the whole eval split, outputs stacked along axis 0."""


def build_task(task_config: Mapping[str, Any]) -> Task:
    """The task the config's `_target_` builds; anything wrong is one line saying what."""
    from hydra.utils import instantiate

    target = str(task_config.get("_target_"))
    try:
        task = instantiate(dict(task_config), _convert_="all")
    except Exception as error:
        reason = " ".join(str(error).split())
        module = target.rpartition(".")[0]
        if "Error locating target" in reason and module:
            reason += (
                f" If {module!r} is your own module, list it in plugins (plugins=[{module}]) "
                "and launch from the folder it is in."
            )
        raise ConfigError(f"task: cannot build {target!r}: {reason}") from None
    if not isinstance(task, Task):
        missing = [m for m in ("name", "metric", *_METHODS) if not hasattr(task, m)]
        raise ConfigError(
            f"task: {target!r} builds a {type(task).__name__}, which lacks {', '.join(missing)}"
        )
    return task


_METHODS = ("build_model", "train_baseline", "load_data", "latency_inputs", "score")


def baseline_key(task: Task) -> str:
    """What a trained baseline depends on: every field of the task as built (defaults
    included, not just what its YAML spells out) and the code of its class and the classes
    it derives from. Changing either trains a new baseline instead of reusing a stale one."""
    fields = dataclasses.asdict(task) if dataclasses.is_dataclass(task) else vars(task)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode())
    for cls in type(task).__mro__:
        try:
            digest.update(Path(inspect.getfile(cls)).read_bytes())
        except (TypeError, OSError):  # built in, or no file to read
            continue
    return f"{task.name}-{digest.hexdigest()[:16]}"


def load_task_data(task: Task, cache_dir: Path) -> TaskData:
    """The task's data; cached on the node when the task says its data is worth it.

    A task whose `load_data()` is slow (a teacher's targets over thousands of inputs) and
    determined by its fields, its code and what its optional `data_cache_key() -> str`
    names (versions of the files or models it reads) defines that method: its data is then
    computed once per node, under a lock, and read back by every later worker and sweep."""
    extra = getattr(task, "data_cache_key", None)
    if extra is None:
        return task.load_data()
    digest = hashlib.sha256(str(extra()).encode()).hexdigest()[:16]

    def splits(data: TaskData) -> dict[str, list[Batch]] | None:
        if not isinstance(data, TaskData):
            return None  # not cached: the task check says what is wrong with it
        return {"train": data.train, "calibration": data.calibration, "eval": data.eval}

    stored = cache_dir / f"{baseline_key(task)}-data-{digest}.pt"
    return _node_cached(stored, task.load_data, splits, lambda state: TaskData(**state))


def load_baseline(task: Task, data: TaskData, cache_dir: Path) -> torch.nn.Module:
    """The trained baseline, from the node's cache or trained now under a lock (once a node)."""
    model = task.build_model()

    def trained() -> torch.nn.Module:
        task.train_baseline(model, data)
        return model

    def loaded(state: dict[str, torch.Tensor]) -> torch.nn.Module:
        model.load_state_dict(state)
        return model

    stored = baseline_path(task, cache_dir)
    return _node_cached(stored, trained, lambda m: m.state_dict(), loaded).eval()


def baseline_path(task: Task, cache_dir: Path) -> Path:
    """Where a node's cache keeps the task's trained baseline."""
    return cache_dir / f"{baseline_key(task)}.pt"


@contextlib.contextmanager
def cache_lock(stored: Path) -> Iterator[None]:
    """The node-wide lock on one cached file: its writers take turns, across processes."""
    with open(stored.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _node_cached(
    stored: Path,
    make: Callable[[], Any],
    state_of: Callable[[Any], Any],
    from_state: Callable[[Any], Any],
) -> Any:
    """What `stored` holds (through `from_state`), or made now by `make` and stored (its
    `state_of`, unless None) under a lock: once a node, however many workers ask at once.
    A partial file is renamed into place, so a crash never leaves a torn one."""
    stored.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(stored):
        if stored.exists():
            return from_state(torch.load(stored, weights_only=True))
        made = make()
        state = state_of(made)
        if state is not None:
            partial = stored.with_suffix(".partial")
            torch.save(state, partial)
            partial.rename(stored)
        return made


def evaluate(task: Task, predict: Predict, batches: list[Batch]) -> float:
    """The task's metric computed on what the runtime predicts, not on the torch model."""
    return evaluate_all(task, predict, batches)[task.metric]


def evaluate_all(task: Task, predict: Predict, batches: list[Batch]) -> dict[str, float]:
    """The task's metric, plus what its optional `extra_scores(outputs, targets)` returns
    (more quality numbers to log, e.g. a retrieval recall beside a similarity)."""
    outputs = np.concatenate(
        [predict({k: v.numpy() for k, v in inputs.items()}) for inputs, _ in batches]
    )
    targets = np.concatenate([t.numpy() for _, t in batches])
    scores = {task.metric: _finite(task, "score()", task.score(outputs, targets))}
    extra = getattr(task, "extra_scores", None)
    for name, value in (extra(outputs, targets) if extra else {}).items():
        scores[name] = _finite(task, f"extra_scores()[{name!r}]", value)
    return scores


def _finite(task: Task, what: str, value: object) -> float:
    if not isinstance(value, int | float | np.floating) or not np.isfinite(value):
        raise TypeError(f"task {task.name}: {what} returned {value!r}, not a finite number")
    return float(value)
