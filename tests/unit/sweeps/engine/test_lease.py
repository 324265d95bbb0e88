"""The driver lease in the sweep's storage: one holder at a time, on any host; a dead holder's
lease is taken over (at once on this host, after its expiry elsewhere)."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy

from slimsweep.sweeps.engine.lease import _TABLE, DriverLease, _pid_namespace
from slimsweep.sweeps.errors import SweepError


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def _pretend_holder(
    url: str, host: str, pid: int, expires_in: float, pid_namespace: int | None = None
) -> None:
    """A lease row as a driver on `host` (in this process namespace) would have left it."""
    import time

    engine = sqlalchemy.create_engine(url)
    _TABLE.create(engine, checkfirst=True)
    namespace = _pid_namespace() if pid_namespace is None else pid_namespace
    holder = json.dumps(
        {"host": host, "pid": pid, "folder": "/elsewhere", "pid_namespace": namespace}
    )
    with engine.begin() as connection:
        connection.execute(
            _TABLE.insert().values(
                sweep="s", token="theirs", holder=holder, expires_at=time.time() + expires_in
            )
        )
    engine.dispose()


def test_a_held_lease_is_refused_and_free_again_once_released(tmp_path: Path) -> None:
    first, second = DriverLease(_url(tmp_path), "s", 60), DriverLease(_url(tmp_path), "s", 60)
    first.acquire()
    with pytest.raises(SweepError, match="already being run by another driver"):
        second.acquire()
    assert DriverLease(_url(tmp_path), "other sweep", 60).acquire() is None  # per sweep
    first.release()
    second.acquire()
    assert second.replaced is None and second.renew()


def test_another_hosts_lease_holds_until_it_expires(tmp_path: Path) -> None:
    _pretend_holder(_url(tmp_path), "gpu-node-7", 1, expires_in=30)
    with pytest.raises(SweepError, match=r"pid 1 on gpu-node-7, in /elsewhere"):
        DriverLease(_url(tmp_path), "s", 60).acquire()


def test_an_expired_lease_is_taken_over_and_its_holder_can_no_longer_renew(
    tmp_path: Path,
) -> None:
    _pretend_holder(_url(tmp_path), "gpu-node-7", 1, expires_in=-1)
    lease = DriverLease(_url(tmp_path), "s", 60)
    lease.acquire()
    assert lease.replaced is not None and lease.replaced.host == "gpu-node-7"
    stale = DriverLease(_url(tmp_path), "s", 60)
    stale.token = "theirs"  # the driver that was silent too long, back again
    assert not stale.renew()


def test_a_dead_process_on_this_host_loses_its_lease_at_once(tmp_path: Path) -> None:
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    _pretend_holder(_url(tmp_path), socket.gethostname(), int(gone.stdout), expires_in=60)
    lease = DriverLease(_url(tmp_path), "s", 60)
    lease.acquire()
    assert lease.replaced is not None and lease.replaced.pid == int(gone.stdout)


def test_a_pid_from_another_containers_namespace_is_not_taken_for_dead(tmp_path: Path) -> None:
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    _pretend_holder(_url(tmp_path), socket.gethostname(), int(gone.stdout), 60, pid_namespace=7)
    with pytest.raises(SweepError, match="already being run"):
        DriverLease(_url(tmp_path), "s", 60).acquire()


def test_drivers_racing_for_an_expired_lease_take_it_once(tmp_path: Path) -> None:
    for sweep in range(5):
        _pretend_holder(_url(tmp_path), "gone-host", 1, expires_in=-1)
        leases = [DriverLease(_url(tmp_path), "s", 60) for _ in range(4)]
        won: list[DriverLease] = []
        threads = [threading.Thread(target=_take, args=(lease, won)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1, f"round {sweep}: {len(won)} drivers hold the lease"
        won[0].release()


def _take(lease: DriverLease, won: list[DriverLease]) -> None:
    try:
        lease.acquire()
        won.append(lease)
    except SweepError:
        pass


_OUT = {"capture_output": True, "text": True, "check": True}


def test_the_driver_keeps_its_lease_through_phases_without_trials(tmp_path: Path) -> None:
    """Ray's start, the baseline's training or the spool's flush can outlast a lease: the
    driver renews it from the moment it takes it, not only while trials run."""
    import time

    from slimsweep.sweeps.config import load_settings
    from slimsweep.sweeps.engine.driver import _driver_lease

    overrides = [f"sweep.dir={tmp_path}", "sweep.heartbeat_s=1", "sweep.lease_s=2"]
    with _driver_lease(load_settings(overrides)) as keepalive:
        time.sleep(3.5)  # longer than the lease, with no trial in flight
        with pytest.raises(SweepError, match="already being run"):
            DriverLease(f"sqlite:///{tmp_path / 'optuna.db'}", keepalive.lease.sweep, 2).acquire()
        keepalive.check()  # still this driver's
