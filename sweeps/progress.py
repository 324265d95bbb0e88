"""What a running sweep shows: a live panel on a terminal, plain lines in a log, or (quiet)
only failures and the final front."""

import time
from collections.abc import Callable
from typing import Any

from slimsweep.sweeps.results.rows import SweepResults


class LineProgress:
    """One line per event; `quiet` keeps only failures and warnings, for CI logs."""

    def __init__(self, out: Callable[[str], None] = print, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.to_run = 0
        self.started_at = time.monotonic()
        self.done = self.failed_count = 0
        self.running: set[int] = set()

    def begin(self, to_run: int) -> None:
        self.to_run, self.started_at = to_run, time.monotonic()

    def message(self, text: str) -> None:
        """Progress news; kept out of quiet logs."""
        if not self.quiet:
            self.out(text)

    def warning(self, text: str) -> None:
        """Something the user must hear, even in a quiet log."""
        self.out(text)

    def started(self, number: int, recipe: str) -> None:
        self.running.add(number)
        if not self.quiet:
            self.out(f"trial {number} started: {recipe}")

    def finished(self, number: int, values: dict[str, float], results: SweepResults) -> None:
        self.running.discard(number)
        self.done += 1
        if not self.quiet:
            shown = ", ".join(f"{n}={v:.4g}" for n, v in values.items())
            self.out(f"trial {number} done: {shown}")

    def failed(self, number: int, reason: str) -> None:
        self.running.discard(number)
        self.failed_count += 1
        self.out(f"trial {number} failed: {reason}")

    def settled(self, number: int, text: str) -> None:
        """A trial ended without being measured: answered from an earlier one, or stopped
        early. It counts as done."""
        self.running.discard(number)
        self.done += 1
        self.message(text)

    def close(self) -> None:
        """Nothing to tear down for plain lines."""


class LiveProgress(LineProgress):
    """A rich panel redrawn in place: trials done / running / failed / remaining, elapsed and
    ETA, the current front's size and the best value per objective; events scroll above it."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        super().__init__(self.console.print)
        self.results: SweepResults | None = None
        self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def message(self, text: str) -> None:
        super().message(text)
        self._refresh()

    def warning(self, text: str) -> None:
        super().warning(text)
        self._refresh()

    def started(self, number: int, recipe: str) -> None:
        super().started(number, recipe)
        self._refresh()

    def finished(self, number: int, values: dict[str, float], results: SweepResults) -> None:
        self.results = results
        super().finished(number, values, results)
        self._refresh()

    def failed(self, number: int, reason: str) -> None:
        super().failed(number, reason)
        self._refresh()

    def close(self) -> None:
        self.live.stop()

    def _refresh(self) -> None:
        self.live.update(self.render())

    def render(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started_at
        ended = self.done + self.failed_count
        remaining = max(self.to_run - ended - len(self.running), 0)
        eta = elapsed / ended * (self.to_run - ended) if ended else None
        table = Table.grid(padding=(0, 2))
        table.add_row(
            f"[green]done {self.done}",
            f"[yellow]running {len(self.running)}",
            f"[red]failed {self.failed_count}",
            f"remaining {remaining}",
            f"elapsed {_clock(elapsed)}",
            f"ETA {_clock(eta) if eta is not None else '?'}",
        )
        if self.results is not None:
            table.add_row(*_front_summary(self.results))
        return table


def _front_summary(results: SweepResults) -> list[str]:
    cells = [f"front {len(results.front)}"]
    for name, up in results.objectives.items():
        values = [r.values[name] for r in results.rows]
        if values:
            cells.append(f"best {name} {(max if up else min)(values):.4g}")
    return cells


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"
