"""One driver per sweep, across hosts: a lease row in the study's own database.

A local file lock cannot see a driver on another host, so the lease lives where every driver
of the sweep must look: the study's storage. Taking it is one atomic statement (an INSERT, or
an UPDATE conditioned on the holder it replaces), so two drivers racing for a free or an
expired lease cannot both win. The holder renews it while it runs; a holder that stops
renewing (SIGKILLed, or its host gone) loses it after `ttl_s`, and a holder on this host whose
process is gone loses it at once. Expiry uses the hosts' clocks, which a cluster keeps in step.
"""

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass

import sqlalchemy

from slimsweep.sweeps.errors import SweepError

_TABLE = sqlalchemy.Table(
    "slimsweep_driver_leases",
    sqlalchemy.MetaData(),
    sqlalchemy.Column("sweep", sqlalchemy.String(512), primary_key=True),
    sqlalchemy.Column("token", sqlalchemy.String(64), nullable=False),
    sqlalchemy.Column("holder", sqlalchemy.Text, nullable=False),
    sqlalchemy.Column("expires_at", sqlalchemy.Float, nullable=False),
)


@dataclass(frozen=True)
class Holder:
    """Who runs the sweep, as a user needs it to find that driver."""

    host: str
    pid: int
    folder: str
    # Containers on the host's network share its name but not its process ids: a pid is
    # only looked up in the namespace it came from.
    pid_namespace: int = 0

    @classmethod
    def this_process(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), os.getcwd(), _pid_namespace())

    def is_gone(self) -> bool:
        """True only when this host can tell: a process of this host (and of this process
        namespace) that no longer runs."""
        if self.host != socket.gethostname() or self.pid_namespace != _pid_namespace():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, in {self.folder}"


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the host name has to do
        return 0


class DriverLease:
    """The lease on one sweep in the database at `url`; `acquire` before running it."""

    def __init__(self, url: str, sweep: str, ttl_s: float) -> None:
        self.engine = sqlalchemy.create_engine(url)
        self.sweep, self.ttl_s = sweep, ttl_s
        self.token = uuid.uuid4().hex
        self.holder = Holder.this_process()
        self.replaced: Holder | None = None  # the dead driver this one took over from
        _TABLE.create(self.engine, checkfirst=True)

    def acquire(self) -> None:
        """Take the lease, or raise naming the driver that holds it."""
        row = {
            "sweep": self.sweep,
            "token": self.token,
            "holder": json.dumps(asdict(self.holder)),
            "expires_at": time.time() + self.ttl_s,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(_TABLE.insert().values(**row))
            return
        except sqlalchemy.exc.IntegrityError:
            pass  # held, or left behind by a driver that died
        with self.engine.begin() as connection:
            held = connection.execute(
                sqlalchemy.select(_TABLE).where(_TABLE.c.sweep == self.sweep)
            ).one_or_none()
        if held is None:  # released in between
            return self.acquire()
        holder = Holder(**json.loads(held.holder))
        left = held.expires_at - time.time()
        if left > 0 and not holder.is_gone():
            raise SweepError(
                f"sweep {self.sweep!r} is already being run by another driver ({holder}); "
                f"its lease in the sweep's storage expires {left:.0f} s after its last renewal"
            )
        with self.engine.begin() as connection:  # replace exactly that holder, atomically
            taken = connection.execute(
                _TABLE.update()
                .where(_TABLE.c.sweep == self.sweep, _TABLE.c.token == held.token)
                .values(**row)
            ).rowcount
        if not taken:
            return self.acquire()  # another driver replaced it first: look again
        self.replaced = holder

    def renew(self) -> bool:
        """Push the expiry on; False when the lease is no longer this driver's."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    _TABLE.update()
                    .where(_TABLE.c.sweep == self.sweep, _TABLE.c.token == self.token)
                    .values(expires_at=time.time() + self.ttl_s)
                ).rowcount
            )

    def release(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                _TABLE.delete().where(_TABLE.c.sweep == self.sweep, _TABLE.c.token == self.token)
            )
        self.engine.dispose()
