"""A user's task checked against the protocol before any trial runs: its data, the shapes
its model produces and the numbers its metric returns. A wrong task fails here, naming
what is wrong, instead of in every trial of a sweep."""

import inspect
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.task import Task, TaskData, build_task, evaluate_all, load_task_data


@dataclass(frozen=True)
class CheckedTask:
    task: Task
    quality_metrics: tuple[str, ...]  # the task's metric, then what extra_scores() adds


def _check_batches(name: str, batches: Any, required: bool) -> None:
    if not isinstance(batches, list) or (required and not batches):
        raise ConfigError(f"task data: the {name} split must be a non-empty list of batches")
    for i, batch in enumerate(batches):
        where = f"task data: {name}[{i}]"
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ConfigError(f"{where} must be an (inputs, targets) pair")
        inputs, targets = batch
        if not isinstance(inputs, Mapping) or not inputs:
            raise ConfigError(f"{where}: inputs must be a dict of named tensors")
        sizes = {k: v.shape[0] for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        if len(sizes) != len(inputs):
            bad = [k for k, v in inputs.items() if not isinstance(v, torch.Tensor)]
            raise ConfigError(f"{where}: inputs {bad} are not tensors")
        if not isinstance(targets, torch.Tensor) or {targets.shape[0], *sizes.values()} != {
            targets.shape[0]
        }:
            raise ConfigError(
                f"{where}: inputs and targets must be tensors with one batch size; got "
                f"{sizes} and targets {getattr(targets, 'shape', type(targets).__name__)}"
            )


def check_task(
    task_config: Mapping[str, Any],
    cache_dir: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> CheckedTask:
    """Build the task and run its untrained model on its latency inputs (seconds: a model
    that refuses its inputs is caught before any data loads); then load its data (cached on
    the node in `cache_dir` when the task asks for it, with progress through `say`), check
    every batch, and run and score one eval batch (its metric and any extra scores: the
    quality numbers each trial will record)."""
    task = build_task(task_config)
    model = _called(task, "build_model()", task.build_model)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"task {task.name}: build_model() returned {type(model).__name__}, not a torch Module"
        )
    model.eval()
    latency = _called(task, "latency_inputs()", task.latency_inputs)
    if (
        not isinstance(latency, Mapping)
        or not latency
        or not all(isinstance(v, torch.Tensor) for v in latency.values())
    ):
        raise ConfigError(f"task {task.name}: latency_inputs() must return a dict of tensors")
    _run_model(task, model, latency, "latency_inputs()")
    data = _load_data(task, cache_dir, say)
    _check_batches("eval", data.eval, required=True)
    _check_batches("calibration", data.calibration, required=False)
    _check_batches("train", data.train, required=False)
    inputs, targets = data.eval[0]
    if set(latency) != set(inputs):
        raise ConfigError(
            f"task {task.name}: latency_inputs() names {sorted(latency)}, the eval batches "
            f"name {sorted(inputs)}; the artifact is exported and timed on one signature"
        )
    outputs = _run_model(task, model, inputs, "the first eval batch")
    if not isinstance(outputs, torch.Tensor) or outputs.shape[0] != targets.shape[0]:
        raise ConfigError(
            f"task {task.name}: the model must return one tensor with the batch first; on an eval "
            f"batch of {targets.shape[0]} it returned "
            f"{getattr(outputs, 'shape', type(outputs).__name__)}"
        )

    # The first and last eval batches (a task may score parts of its eval split apart, as
    # MiniLM its second corpus): every score the split gives is then a known metric.
    scored = [data.eval[0]] if len(data.eval) == 1 else [data.eval[0], data.eval[-1]]
    computed = {id(inputs): outputs}

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        for inputs, _ in scored:  # the outputs just checked, or the last batch's
            if all(np.array_equal(batch[k], inputs[k].numpy()) for k in inputs):
                if id(inputs) not in computed:
                    computed[id(inputs)] = _run_model(task, model, inputs, "the last eval batch")
                return computed[id(inputs)].numpy()
        raise AssertionError("scored a batch that was not given")

    try:
        scores = evaluate_all(task, predict, scored)
    except TypeError as error:  # a score that is not a finite number
        raise ConfigError(str(error)) from None
    except Exception as error:
        raise ConfigError(f"task {task.name}: scoring one eval batch raised {error!r}") from None
    return CheckedTask(task, tuple(scores))


def _called(task: Task, what: str, member: Callable[[], Any]) -> Any:
    try:
        return member()
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"task {task.name}: {what} raised {error!r}") from None


def _run_model(task: Task, model: torch.nn.Module, inputs: Mapping[str, Any], source: str) -> Any:
    signature = inspect.signature(model.forward)
    try:
        signature.bind(**inputs)
    except TypeError as error:  # forward() names its arguments otherwise
        raise ConfigError(
            f"task {task.name}: the model was called as model(**inputs) with the names "
            f"{sorted(inputs)} (from {source}), and forward{signature} refused them ({error}); "
            "name the inputs as forward()'s arguments"
        ) from None
    return _called(task, f"the untrained model on {source}", lambda: _no_grad(model, inputs))


def _no_grad(model: torch.nn.Module, inputs: Mapping[str, Any]) -> Any:
    with torch.no_grad():
        return model(**inputs)


def _load_data(task: Task, cache_dir: Path | None, say: Callable[[str], None]) -> TaskData:
    """The task's data, with a line before and after (and one every so often) so that a
    long load is never silent."""
    started = time.monotonic()
    say(f"task {task.name}: loading its data")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            say(f"task {task.name}: still loading its data ({time.monotonic() - started:.0f} s)")

    beating = threading.Thread(target=heartbeat, daemon=True)
    beating.start()
    try:
        data = load_task_data(task, cache_dir) if cache_dir else task.load_data()
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"task {task.name}: load_data() raised {error!r}") from None
    finally:
        stop.set()
        beating.join()
    if not isinstance(data, TaskData):
        raise ConfigError(
            f"task {task.name}: load_data() returned {type(data).__name__}, not TaskData"
        )
    say(f"task {task.name}: data ready in {time.monotonic() - started:.1f} s")
    return data


HEARTBEAT_SECONDS = 15.0
