"""Trial records that the MLflow server could not take, kept under sweep.dir until it can.

The study (Optuna) goes on while a tracking server is away: each trial's MLflow writes
(its run opened, its results or failure, its warnings) are written to the spool in order and
sent when the server answers again. Sending is idempotent, so a driver that dies while
sending loses nothing and logs nothing twice: a trial's run is found again by its trial tag
before one is created, and results are not sent to a run that has already ended.
"""

import logging
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimsweep.sweeps.results.keys import FAILURE_TAG, ROLE_TAG, SHA256_TAG, TRIAL_TAG
from slimsweep.sweeps.results.keys import PENDING_RUN as PENDING
from slimsweep.sweeps.results.tracking import Tracker

RETRY_SECONDS = 5.0  # how often a driver with spooled records asks for the server again
ENDED = ("FINISHED", "FAILED", "KILLED")


class SpoolingTracker(Tracker):
    """A Tracker whose per-trial writes are spooled while its (HTTP) server is away.

    `on_sent(trial number, run id)` hears of the run a spooled trial finally got, so that the
    study can link to it."""

    def __init__(
        self,
        uri: str,
        artifact_root: str | None,
        sweep_name: str,
        folder: Path,
        on_sent: Callable[[int, str], None],
    ) -> None:
        if uri.startswith(("http://", "https://")):
            # MLflow's default retries a refused connection for minutes: fail fast and spool
            import os

            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        super().__init__(uri, artifact_root, sweep_name)
        self.uri, self.folder, self.on_sent = uri, folder, on_sent
        self._retry_at = 0.0
        self._sent: dict[int, str] = {}  # trial number -> run id, of runs created late

    def start_trial(
        self, number: int, params: dict[str, Any], recipe: str, config: dict[str, Any]
    ) -> str:
        sent = self._send_or_spool(number, "start_trial", number, params, recipe, config)
        return sent if sent is not None else f"{PENDING}{number}"

    def finish_trial(self, run_id: str, *args: Any, **kwargs: Any) -> None:
        self._send_or_spool(_number(run_id), "finish_trial", run_id, *args, **kwargs)

    def fail_trial(self, run_id: str, reason: str, *, status: str = "FAILED") -> None:
        self._send_or_spool(_number(run_id), "fail_trial", run_id, reason, status=status)

    def tag(self, run_id: str, key: str, value: str) -> None:
        self._send_or_spool(_number(run_id), "tag", run_id, key, value)

    def pending(self) -> list[Path]:
        return sorted(self.folder.glob("*.pkl")) if self.folder.is_dir() else []

    def flush(self, wait_s: float = 0.0) -> int:
        """Send what is spooled, in order, waiting up to `wait_s` for the server; returns how
        many records are still spooled."""
        deadline = time.monotonic() + wait_s
        while True:
            left = self._send_spooled()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(min(RETRY_SECONDS, max(deadline - time.monotonic(), 0.0)))

    def _send_or_spool(self, number: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """Send now when nothing is waiting before it (order matters: a run's results after
        its start), else spool it; spool it too when the send fails because the server is
        away. Any other failure is the caller's."""
        if self.pending() and (time.monotonic() < self._retry_at or self._send_spooled()):
            return self._spool(number, method, args, kwargs)
        try:
            if method != "start_trial" and args[0].startswith(PENDING):  # its run exists now
                args = (self._sent.get(number) or self._trial_run(number), *args[1:])
            return getattr(super(), method)(*args, **kwargs)
        except Exception:
            if not self.server_away():
                raise
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return self._spool(number, method, args, kwargs)

    def _spool(self, number: int, method: str, args: tuple, kwargs: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        sequence = int(self.pending()[-1].name.split("-")[0]) + 1 if self.pending() else 0
        path = self.folder / f"{sequence:08d}-{method}.pkl"
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps((number, method, args, kwargs)))
        partial.rename(path)  # a record is in the spool whole, or not at all

    def _send_spooled(self) -> int:
        """Send spooled records, oldest first, until one fails because the server is still
        away; returns how many are left."""
        pending = self.pending()
        for index, path in enumerate(pending):
            number, method, args, kwargs = pickle.loads(path.read_bytes())
            try:
                self._replay(number, method, args, kwargs)
            except Exception as error:
                if self.server_away():
                    self._retry_at = time.monotonic() + RETRY_SECONDS
                    return len(pending) - index
                # refused by a server that answers (a deleted run, say): kept aside, so that
                # it does not block every record after it, and every later sweep
                (self.folder / "refused").mkdir(exist_ok=True)
                path.rename(self.folder / "refused" / path.name)
                logging.getLogger(__name__).warning("MLflow refused %s: %s", path, error)
                continue
            path.unlink()
        return 0

    def _replay(self, number: int, method: str, args: tuple, kwargs: dict) -> None:
        if method == "start_trial":
            run_id = self._trial_run(number)
            if run_id is None:
                run_id = Tracker.start_trial(self, *args, **kwargs)
            else:  # created before the server went away: its params may not have followed
                _, params, _, config = args
                self.describe_trial(run_id, params, config)
            self._sent[number] = run_id
            self.on_sent(number, run_id)
            return
        run_id = args[0]
        if run_id.startswith(PENDING):
            run_id = self._sent.get(number) or self._trial_run(number)
        if method != "tag" and _already_sent(method, self.client.get_run(run_id)):
            return
        getattr(Tracker, method)(self, run_id, *args[1:], **kwargs)

    def _trial_run(self, number: int) -> str | None:
        """The run of trial `number` if the server already has it (sent before a crash)."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'trial' and tags.`{TRIAL_TAG}` = '{number}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def server_away(self) -> bool:
        """True when the tracking URI is a server that does not answer its health check."""
        if not self.uri.startswith(("http://", "https://")):
            return False
        import requests

        try:
            return not requests.get(f"{self.uri.rstrip('/')}/health", timeout=3).ok
        except requests.RequestException:
            return True


def _already_sent(method: str, run: Any) -> bool:
    """Whether a record was sent whole before the driver stopped. The status alone does not
    say: logging the model ends the run FINISHED before its metrics are written. A finish's
    last write carries the sha256 tag with the metrics; a failure's, its reason."""
    marker = SHA256_TAG if method == "finish_trial" else FAILURE_TAG
    return run.info.status in ENDED and marker in run.data.tags


def _number(run_id: str) -> int:
    """The trial of a run not yet created (its records are sent to the run it gets), else -1:
    a created run is addressed by its id."""
    return int(run_id.removeprefix(PENDING)) if run_id.startswith(PENDING) else -1
