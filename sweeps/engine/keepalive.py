"""The driver's pulse: its lease renewed and an Optuna heartbeat for every trial in flight.

Optuna's heartbeat (RDBStorage `heartbeat_interval`, `grace_period`) is what tells a trial
whose driver died from one that is merely long: the driver records it for the trials it runs
on Ray, since no Optuna `optimize` loop runs them. One thread does both, so a driver that
stalls loses its lease and its trials' heartbeats together."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import optuna

from slimsweep.sweeps.engine.lease import DriverLease
from slimsweep.sweeps.engine.ray_pool import Abandoned


class Keepalive:
    """Beats from the moment the lease is taken until it is released: Ray's start, baseline
    training, the spool's flush and the quiet phase can each outlast a lease."""

    def __init__(self, lease: DriverLease, every_s: float) -> None:
        self.lease, self.every_s = lease, every_s
        self.storage: optuna.storages.RDBStorage | None = None  # once the study is open
        self.lost = threading.Event()  # set when another driver took the lease over
        self._trial_ids: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()

    def running(self, trial: optuna.Trial) -> None:
        assert self.storage is not None, "the study's storage is attached before trials run"
        trial_id = trial._trial_id  # Optuna keys heartbeats by its storage id, not the number
        self.storage.record_heartbeat(trial_id)
        with self._guard:
            self._trial_ids.add(trial_id)

    def done(self, trial: optuna.Trial) -> None:
        with self._guard:
            self._trial_ids.discard(trial._trial_id)

    def check(self) -> None:
        """Before the driver writes to the study: raise `Abandoned` if this driver no longer
        holds the sweep (a beat may not have noticed yet)."""
        if self.lost.is_set() or not self.lease.renew():
            self.lost.set()
            raise Abandoned("another driver holds the sweep's lease")

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.lease.renew():
                    self.lost.set()
                    return
                with self._guard:
                    trial_ids = list(self._trial_ids)
                for trial_id in trial_ids if self.storage is not None else []:
                    self.storage.record_heartbeat(trial_id)
            except Exception:  # the database away for a moment: the next beat tries again
                continue

    @contextmanager
    def beating(self) -> Iterator["Keepalive"]:
        thread = threading.Thread(target=self._beat, name="slimsweep-keepalive", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=30)  # a database that stopped answering must not hang an exit
