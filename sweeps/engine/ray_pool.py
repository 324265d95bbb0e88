"""Ray, in one place: trials and the quiet phase run as plain Ray tasks (not Ray Tune: its
per-trial overhead is seconds). The rest of slimsweep submits functions with their Ray
options (resources, retries) and gets results."""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.settings import ClusterSettings

Options = Mapping[str, Any]  # ray.remote options: num_cpus, num_gpus, resources, ...
CHECK_SECONDS = 10.0  # how often a wait looks for tasks that no live node can run


class Abandoned(SweepError):
    """The driver stopped waiting for its trials: another driver owns them now."""


class RayPool:
    """Tasks in flight on the local or the configured Ray cluster."""

    def __init__(
        self,
        cluster: ClusterSettings,
        placements: Mapping[str, Options] | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        stranded_after: float = 300.0,
    ) -> None:
        """`placements` name the options tasks will be submitted with: each must fit some
        node of the cluster, or no task of it could ever start. A task that no live node
        can run for `stranded_after` seconds (its only target node left) is given up."""
        import ray

        if not ray.is_initialized():
            local = cluster.address is None
            ray.init(
                address=cluster.address,
                num_cpus=cluster.num_cpus if local else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                runtime_env=dict(runtime_env) if runtime_env else None,
                # Ray runs its workers at nice 15: any other process on the node would then
                # take their CPU, and a latency measured there would time the queue.
                _system_config={"worker_niceness": 0} if local else None,
            )
        self.stranded_after = stranded_after
        self._pending: dict[Any, tuple[Any, Options]] = {}  # ref → (the caller's key, options)
        self._stranded_since: dict[Any, float] = {}
        nodes = _live_nodes()
        for what, options in (placements or {}).items():
            needed = _needed(options)
            if not _fits(needed, nodes):
                offered = "; ".join(_listed(node) for node in nodes)
                raise SweepError(
                    f"cluster: no node of the Ray cluster has what a {what} task needs "
                    f"({_listed(needed)}); "
                    f"the nodes offer: {offered or 'nothing'}. No such task could ever start"
                )

    def __len__(self) -> int:
        return len(self._pending)

    def submit(
        self, key: Any, function: Callable[[Any], Any], request: Any, options: Options
    ) -> None:
        self._pending[_remote(function, options).remote(request)] = (key, options)

    def call(self, function: Callable[..., Any], options: Options, *args: Any) -> Any:
        """One task outside the trials' flow; returns its ObjectRef."""
        return _remote(function, options).remote(*args)

    def next_done(self, abandon: threading.Event | None = None) -> tuple[Any, Any, str | None]:
        """(key, result, None) of the next task to finish, or (key, None, why) if Ray lost it
        (its worker died, its node left, more often than its retries allow). Raises
        `Abandoned` once `abandon` is set (the driver lost its lease)."""
        import ray

        while True:
            done, _ = ray.wait(list(self._pending), num_returns=1, timeout=CHECK_SECONDS)
            if done:
                (ref,) = done
                break
            if abandon is not None and abandon.is_set():
                raise Abandoned("the wait for trials was abandoned")
            stranded = self._stranded()
            if stranded is not None:
                ref, why = stranded
                key, _ = self._pending.pop(ref)
                with contextlib.suppress(Exception):  # it may have ended meanwhile
                    ray.cancel(ref, force=True)
                return key, None, why
        key, _ = self._pending.pop(ref)
        self._stranded_since.pop(ref, None)
        try:
            return key, ray.get(ref), None
        except ray.exceptions.RayError as error:
            return key, None, f"Ray lost the task: {error}"

    def cancel(self) -> None:
        """Stop every task still in flight (their workers are killed)."""
        import ray

        for ref in self._pending:
            with contextlib.suppress(Exception):  # it ended, or Ray is stopping
                ray.cancel(ref, force=True)
        self._pending.clear()
        self._stranded_since.clear()

    def _stranded(self) -> tuple[Any, str] | None:
        """A task that no live node has been able to run for `stranded_after` seconds."""
        nodes, now = _live_nodes(), time.monotonic()
        for ref, (_, options) in self._pending.items():
            needed = _needed(options)
            if _fits(needed, nodes):
                self._stranded_since.pop(ref, None)
                continue
            since = self._stranded_since.setdefault(ref, now)
            if now - since >= self.stranded_after:
                return ref, (
                    f"no live node of the Ray cluster has what this task needs ({_listed(needed)}) "
                    f"for {now - since:.0f} s: the node that had it left"
                )
        return None

    def run(
        self, function: Callable[[Any], Any], request: Any, options: Options
    ) -> tuple[Any, str | None]:
        """One task to its end: (result, None) or (None, why Ray lost it)."""
        self.submit(None, function, request, options)
        _, result, lost = self.next_done()
        return result, lost


def _live_nodes() -> list[dict[str, float]]:
    import ray

    return [n["Resources"] for n in ray.nodes() if n["Alive"]]


def _fits(needed: Mapping[str, float], nodes: list[dict[str, float]]) -> bool:
    return any(all(node.get(k, 0) >= v for k, v in needed.items()) for node in nodes)


def _needed(options: Options) -> dict[str, float]:
    needed = {"CPU": options.get("num_cpus") or 0, "GPU": options.get("num_gpus") or 0}
    needed.update(options.get("resources") or {})
    if options.get("memory"):
        needed["memory"] = options["memory"]
    return {k: float(v) for k, v in needed.items() if v}


def _listed(resources: Mapping[str, float]) -> str:
    """Resources as a user reads them, without Ray's own bookkeeping (node:…, object store)."""
    shown = (k for k in sorted(resources) if not k.startswith("node:"))
    return ", ".join(f"{k} {resources[k]:g}" for k in shown if k != "object_store_memory")


def _remote(function: Callable[..., Any], options: Options) -> Any:
    import ray

    return ray.remote(**{k: v for k, v in options.items() if v is not None})(function)
