"""The node lock across real processes: a measurement never overlaps anything else."""

import multiprocessing
import time
from pathlib import Path

from slimsweep.sweeps.engine.node_lock import NodeLock


def _worker(
    directory: str, kind: str, seconds: float, rounds: int, queue: multiprocessing.Queue
) -> None:
    lock = NodeLock(Path(directory))
    for _ in range(rounds):
        with lock.measure() if kind == "measure" else lock.compute():
            time.sleep(seconds)
    queue.put(lock.phases)


def _run(
    directory: Path, kinds: list[str], seconds: float = 0.05, rounds: int = 3
) -> list[tuple[str, float, float]]:
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(str(directory), k, seconds, rounds, queue))
        for k in kinds
    ]
    for w in workers:
        w.start()
    phases = [p for _ in workers for p in queue.get(timeout=60)]
    for w in workers:
        w.join(timeout=60)
    return phases


def _overlap(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_measurements_overlap_nothing(tmp_path: Path) -> None:
    phases = _run(tmp_path, ["measure", "measure", "compute", "compute"])
    measures = [p for p in phases if p[0] == "measure"]
    computes = [p for p in phases if p[0] == "compute"]
    assert len(measures) == 6 and len(computes) == 6
    for m in measures:
        assert not any(_overlap(m, other) for other in phases if other is not m)


def test_compute_phases_share_the_node(tmp_path: Path) -> None:
    first, second = _run(tmp_path, ["compute", "compute"], seconds=3.0, rounds=1)
    assert _overlap(first, second)


def test_a_disabled_lock_still_records_phases(tmp_path: Path) -> None:
    lock = NodeLock(tmp_path, enabled=False)
    with lock.measure("latency"):
        pass
    assert [p[0] for p in lock.phases] == ["latency"] and not list(tmp_path.iterdir())
