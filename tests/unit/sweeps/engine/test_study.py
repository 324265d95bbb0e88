"""Opening a sweep's storage while another process creates it."""

import multiprocessing
from pathlib import Path
from typing import Any

import optuna

from slimsweep.sweeps.engine.study import open_storage


def _open_at_once(url: str, start: Any, attempts: int) -> str:
    start.wait()
    try:
        storage = open_storage(url, attempts)
        optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    except Exception as error:
        return type(error).__name__
    return "ok"


def _race(tmp_path: Path, attempts: int, processes: int = 6, rounds: int = 3) -> list[str]:
    context = multiprocessing.get_context("spawn")
    outcomes = []
    for round_ in range(rounds):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        with context.Manager() as manager, context.Pool(processes) as pool:
            start = manager.Barrier(processes)
            outcomes += pool.starmap(_open_at_once, [(url, start, attempts)] * processes)
    return outcomes


def test_processes_opening_a_new_storage_together_all_succeed(tmp_path: Path) -> None:
    assert set(_race(tmp_path, attempts=5)) == {"ok"}
