"""What every worker sets up before it measures anything: the user's plugins, the task, the
runtime, the fixed latency inputs, the node's measurement lock and hardware fingerprint.
Trials and the quiet phase share it, so both measure the same way."""

import functools
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slimsweep.sweeps.plugins import Plugins
from slimsweep.sweeps.settings import EarlyStopSettings, RuntimeConfig


@dataclass(frozen=True)
class WorkerSpec:
    """What the driver sends to set a worker up; small, and the same for every trial."""

    task_config: dict[str, Any]
    runtime: RuntimeConfig
    plugins: Plugins = field(default_factory=Plugins)
    exclusive_latency: bool = True
    scratch: str = ""  # where the worker's temporary files go; the driver removes it
    gpu: bool = False  # the trial asked Ray for a GPU (cluster.gpus_per_trial): stages use it
    early_stop: EarlyStopSettings = field(default_factory=EarlyStopSettings)
    # The sweep's runtime, when this trial targets another (a space's runtime choice): its
    # baseline artifact is what the trial's latency is paired with, on its latency settings.
    reference: RuntimeConfig | None = None

    @property
    def paired_with(self) -> RuntimeConfig:
        return self.reference or self.runtime

    @property
    def task_json(self) -> str:
        return json.dumps(self.task_config, sort_keys=True)


@dataclass(frozen=True)
class Worker:
    task: Any  # the Task
    runtime: Any  # the Runtime
    example: dict[str, Any]  # the task's fixed latency batch, as torch tensors (for export)
    latency_inputs: dict[str, np.ndarray]  # the same batch, as a loaded artifact takes it
    axes: dict[str, dict[int, str]]  # the input axes that artifacts leave dynamic
    lock: Any  # the node's NodeLock
    hardware: str  # this node's fingerprint


@functools.cache
def cached_task(task_json: str) -> Any:
    """The task, built once per worker process."""
    from slimsweep.sweeps.task import build_task

    return build_task(json.loads(task_json))


def set_up(spec: WorkerSpec) -> Worker:
    from slimsweep.sweeps.engine.hardware import fingerprint
    from slimsweep.sweeps.engine.node_lock import NodeLock
    from slimsweep.sweeps.runtimes import build_runtime
    from slimsweep.sweeps.runtimes.shapes import task_axes

    # Every temporary file of this task (exports, quantizers) goes to the sweep's scratch
    # folder; a worker process serves many tasks, so each one sets (or clears) it anew.
    if spec.scratch:
        os.makedirs(spec.scratch, exist_ok=True)
    tempfile.tempdir = spec.scratch or None
    spec.plugins.load()
    task = cached_task(spec.task_json)
    example = task.latency_inputs()
    return Worker(
        task,
        build_runtime(spec.runtime),
        example,
        {name: tensor.numpy() for name, tensor in example.items()},
        task_axes(task, example),
        NodeLock(enabled=spec.exclusive_latency),
        fingerprint(),
    )
