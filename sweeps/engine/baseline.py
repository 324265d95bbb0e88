"""The sweep's baseline: trained once (or taken from the cache) by one task, and the same file
loaded by every node.

Nodes with other CPUs, BLAS builds or torch versions may train different weights from the
same seed, and then compress different baselines. So one task makes or loads the file, its
bytes stay in Ray's object store with their sha256, and a node writes them into its own cache
before a trial (unless it already holds exactly those bytes). The driver logs the sha256 with
the sweep's run."""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimsweep.sweeps.engine.worker import WorkerSpec, cached_task, set_up


@dataclass(frozen=True)
class ShippedBaseline:
    file_name: str  # its name in a node's cache: the task's baseline key
    sha256: str
    content: Any  # a Ray ObjectRef to the file's bytes, fetched only by nodes that lack them


def baseline_file(spec: WorkerSpec, cache_dir: str) -> tuple[str, str, bytes]:
    """(file name, sha256, bytes) of the trained baseline, trained now if no cache has it.
    Run as the sweep's first Ray task."""
    from slimsweep.sweeps.task import baseline_path, load_baseline, load_task_data

    set_up(spec)  # the user's plugins (their task, perhaps) import here too
    task, cache = cached_task(spec.task_json), Path(cache_dir)
    load_baseline(task, load_task_data(task, cache), cache)
    path = baseline_path(task, cache)
    content = path.read_bytes()
    return path.name, _sha256(content), content


_placed: set[tuple[str, str, str]] = set()  # (cache, file, sha256) this process has checked


def place(baseline: ShippedBaseline, cache_dir: str) -> None:
    """Make this node's cache hold the sweep's baseline file, byte for byte, under the cache's
    lock; checked once per worker process."""
    import ray

    from slimsweep.sweeps.task import cache_lock

    key = (cache_dir, baseline.file_name, baseline.sha256)
    if key in _placed:
        return
    path = Path(cache_dir) / baseline.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(path):
        if not path.exists() or _sha256(path.read_bytes()) != baseline.sha256:
            content = ray.get(baseline.content)
            if _sha256(content) != baseline.sha256:
                raise RuntimeError("the sweep's baseline file changed in transit (sha256)")
            partial = path.with_suffix(".partial")
            partial.write_bytes(content)
            partial.rename(path)
    _placed.add(key)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
