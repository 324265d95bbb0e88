"""`slimsweep ui`: the sweep's stores in a browser, served on 127.0.0.1 only."""

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from slimsweep.sweeps.errors import SweepError


def serve(tracking_uri: str, storage: str, port: int, say: Callable[[str], None] = print) -> None:
    """Start the MLflow UI (and optuna-dashboard when installed), print their URLs, and stop
    them when interrupted or when one of them exits."""
    for uri in (tracking_uri, storage):
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            raise SweepError(f"no sweeps yet: {uri} does not exist; run `slimsweep run` first")
    commands = {
        f"MLflow UI: http://127.0.0.1:{port}": [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    }
    dashboard = shutil.which("optuna-dashboard")
    if dashboard:
        commands[f"Optuna dashboard: http://127.0.0.1:{port + 1}"] = [
            dashboard,
            storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(port + 1),
        ]
    servers = [subprocess.Popen(command) for command in commands.values()]
    for line in commands:
        say(line)
    if not dashboard:
        say("(optuna-dashboard is not installed; `pip install optuna-dashboard` adds it)")
    try:
        while all(server.poll() is None for server in servers):
            time.sleep(0.5)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
