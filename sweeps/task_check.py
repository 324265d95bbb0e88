"""A user's task checked against the protocol before any trial runs: its data, the shapes
its model produces and the numbers its metric returns. A wrong task fails here, naming
what is wrong, instead of in every trial of a sweep."""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.task import Task, TaskData, build_task, evaluate_all


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


def check_task(task_config: Mapping[str, Any]) -> CheckedTask:
    """Build the task, load its data, run its untrained model on one eval batch and score it
    (its metric and any extra scores: the quality numbers each trial will record)."""
    task = build_task(task_config)
    try:
        data = task.load_data()
    except Exception as error:
        raise ConfigError(f"task {task.name}: load_data() raised {error!r}") from None
    if not isinstance(data, TaskData):
        raise ConfigError(
            f"task {task.name}: load_data() returned {type(data).__name__}, not TaskData"
        )
    _check_batches("eval", data.eval, required=True)
    _check_batches("calibration", data.calibration, required=False)
    _check_batches("train", data.train, required=False)
    inputs, targets = data.eval[0]
    latency = task.latency_inputs()
    if not isinstance(latency, Mapping) or set(latency) != set(inputs):
        raise ConfigError(
            f"task {task.name}: latency_inputs() names {sorted(latency)}, the eval batches "
            f"name {sorted(inputs)}; the artifact is exported and timed on one signature"
        )
    model = task.build_model().eval()
    try:
        with torch.no_grad():
            outputs = model(**inputs)
    except TypeError as error:  # most often: forward() names its arguments otherwise
        raise ConfigError(
            f"task {task.name}: the model was called as model(**inputs) with the batches' "
            f"names {sorted(inputs)}, and forward{inspect.signature(model.forward)} refused "
            f"them ({error}); name the batch's inputs as forward()'s arguments"
        ) from None
    if not isinstance(outputs, torch.Tensor) or outputs.shape[0] != targets.shape[0]:
        raise ConfigError(
            f"task {task.name}: the model must return one tensor with the batch first; on an eval "
            f"batch of {targets.shape[0]} it returned "
            f"{getattr(outputs, 'shape', type(outputs).__name__)}"
        )

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        return outputs.numpy()  # the outputs just checked, of this very batch

    try:
        scores = evaluate_all(task, predict, [data.eval[0]])
    except TypeError as error:  # a score that is not a finite number
        raise ConfigError(str(error)) from None
    except Exception as error:
        raise ConfigError(f"task {task.name}: scoring one eval batch raised {error!r}") from None
    return CheckedTask(task, tuple(scores))
