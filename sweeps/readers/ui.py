"""`slimsweep ui`: the sweep's stores in a browser, served on 127.0.0.1 only. It prints a
link per sweep that lands on its runs table and on its front; the servers' own logs go to
a file, not to the console."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from slimsweep.sweeps.errors import SweepError


def serve(
    tracking_uri: str, storage: str, port: int, log: Path, say: Callable[[str], None] = print
) -> None:
    """Start the MLflow UI (and optuna-dashboard when installed), print where each sweep
    lands, and stop both when interrupted or when one of them exits."""
    for uri in (tracking_uri, storage):
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            raise SweepError(f"no sweeps yet: {uri} does not exist; run `slimsweep run` first")
    from slimsweep.sweeps.readers.links import link_lines
    from slimsweep.sweeps.results.tracking import TrackingStore

    base = f"http://127.0.0.1:{port}"
    mlflow_ui = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    commands = [[*mlflow_ui, "--host", "127.0.0.1", "--port", str(port)]]
    lines = [f"MLflow UI: {base}  (server logs: {log})"]
    for name, experiment_id in TrackingStore(tracking_uri).sweep_experiments().items():
        lines += [f"sweep {name!r} in MLflow:", *link_lines(experiment_id, base)]
    beside = Path(sys.executable).parent / "optuna-dashboard"  # installed with slimsweep[ui]
    dashboard = str(beside) if beside.exists() else shutil.which("optuna-dashboard")
    if dashboard:
        commands.append([dashboard, storage, "--host", "127.0.0.1", "--port", str(port + 1)])
        lines.append(f"Optuna dashboard: http://127.0.0.1:{port + 1}/dashboard")
        lines += [f"  {name}: {url}" for name, url in _studies(storage, port + 1).items()]
    else:
        lines.append("(optuna-dashboard is not installed; `pip install 'slimsweep[ui]'` adds it)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as output:
        # each server in a session of its own: stopping it stops what it started (MLflow's
        # uvicorn workers and job consumers), which a plain terminate() left running
        servers = [
            subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
            for command in commands
        ]
        for line in lines:
            say(line)
        try:
            while all(server.poll() is None for server in servers):
                time.sleep(0.5)
        finally:
            for server in servers:
                _stop(server)


def _stop(server: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the server's whole process group; SIGKILL to what is left after `grace_s`."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sent)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)  # its children, if any outlived it
            return


def _studies(storage: str, port: int) -> dict[str, str]:
    """Each sweep's page in optuna-dashboard (its Pareto front is drawn there)."""
    import optuna

    from slimsweep.sweeps.engine.study import open_storage

    summaries = optuna.get_all_study_summaries(open_storage(storage), include_best_trial=False)
    return {
        s.study_name: f"http://127.0.0.1:{port}/dashboard/studies/{s._study_id}" for s in summaries
    }
