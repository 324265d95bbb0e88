"""One latency measurement at a time on a node, and none beside another trial's compute.

A writer-preferring reader-writer lock over two node-local lock files (flock): compute phases
(stages, export, evaluation, training) share the lock; a measurement holds it alone. A
waiting measurement holds the turnstile, so new compute phases queue behind it and it is not
starved. The files are per node, so trials of different sweeps on one node respect it too.
"""

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DIR = Path(tempfile.gettempdir()) / f"slimsweep-locks-{os.getuid()}"


class NodeLock:
    def __init__(self, directory: Path = DEFAULT_DIR, *, enabled: bool = True) -> None:
        self.directory = directory
        self.enabled = enabled
        self.phases: list[tuple[str, float, float]] = []  # (phase, start, end), wall clock

    @contextlib.contextmanager
    def compute(self, phase: str = "compute") -> Iterator[None]:
        with self._held(fcntl.LOCK_SH, phase):
            yield

    @contextlib.contextmanager
    def measure(self, phase: str = "measure") -> Iterator[None]:
        with self._held(fcntl.LOCK_EX, phase):
            yield

    @contextlib.contextmanager
    def _held(self, mode: int, phase: str) -> Iterator[None]:
        if not self.enabled:
            with self._recorded(phase):
                yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with (
            open(self.directory / "turnstile.lock", "w") as turnstile,
            open(self.directory / "state.lock", "w") as state,
        ):
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            if mode == fcntl.LOCK_SH:  # a reader only passes through the turnstile
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(state, mode)
            try:
                with self._recorded(phase):
                    yield
            finally:
                fcntl.flock(state, fcntl.LOCK_UN)
                fcntl.flock(turnstile, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _recorded(self, phase: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.phases.append((phase, start, time.time()))
