"""Ray, in one place: trials and the quiet phase run as plain Ray tasks (not Ray Tune: its
per-trial overhead is seconds). The rest of slimsweep submits functions and gets results."""

import logging
from collections.abc import Callable
from typing import Any

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.settings import ClusterSettings


class RayPool:
    """Tasks in flight on the local or the configured Ray cluster."""

    def __init__(self, cluster: ClusterSettings) -> None:
        import ray

        if not ray.is_initialized():
            local = cluster.address is None
            ray.init(
                address=cluster.address,
                num_cpus=cluster.num_cpus if local else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                # Ray runs its workers at nice 15: any other process on the node would then
                # take their CPU, and a latency measured there would time the queue.
                _system_config={"worker_niceness": 0} if local else None,
            )
        self.cluster = cluster
        self._pending: dict[Any, Any] = {}  # Ray object ref → the caller's key
        for resource, wanted in (("CPU", cluster.cpus_per_trial), ("GPU", cluster.gpus_per_trial)):
            alive = [n["Resources"].get(resource, 0) for n in ray.nodes() if n["Alive"]]
            largest = max(alive, default=0)
            if wanted > largest:
                raise SweepError(
                    f"cluster.{resource.lower()}s_per_trial={wanted:g}: no node of the Ray "
                    f"cluster has that many {resource}s (the largest has {largest:g}); no "
                    "trial could ever start"
                )

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, key: Any, function: Callable[[Any], Any], request: Any) -> None:
        import ray

        task = ray.remote(
            num_cpus=self.cluster.cpus_per_trial, num_gpus=self.cluster.gpus_per_trial
        )(function)
        self._pending[task.remote(request)] = key

    def next_done(self) -> tuple[Any, Any, str | None]:
        """(key, result, None) of the next task to finish, or (key, None, why) if Ray lost it
        (its worker died, its node left)."""
        import ray

        (ref,), _ = ray.wait(list(self._pending), num_returns=1)
        key = self._pending.pop(ref)
        try:
            return key, ray.get(ref), None
        except ray.exceptions.RayError as error:
            return key, None, f"Ray lost the task: {error}"

    def cancel(self) -> None:
        """Stop every task still in flight (their workers are killed)."""
        import ray

        for ref in self._pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 (it ended, or Ray is stopping: nothing to stop)
                continue
        self._pending.clear()

    def run(self, function: Callable[[Any], Any], request: Any) -> tuple[Any, str | None]:
        """One task to its end: (result, None) or (None, why Ray lost it)."""
        self.submit(None, function, request)
        _, result, lost = self.next_done()
        return result, lost
