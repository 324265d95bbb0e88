"""`slimsweep ui` serves the stores for real, on 127.0.0.1, and stops cleanly."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _experiments(port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
    with urllib.request.urlopen(url, timeout=5) as response:
        return [e["name"] for e in json.load(response)["experiments"]]


def test_ui_serves_the_mlflow_store_and_stops_on_interrupt(tmp_path: Path) -> None:
    mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").create_experiment("my-sweep")
    optuna.create_study(study_name="my-sweep", storage=f"sqlite:///{tmp_path}/optuna.db")
    port = _free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slimsweep.sweeps.cli",
            "ui",
            f"sweep.dir={tmp_path}",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                assert "my-sweep" in _experiments(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow UI never answered"
                assert ui.poll() is None, "slimsweep ui exited early"
                time.sleep(1)
    finally:
        ui.send_signal(signal.SIGINT)
        output, _ = ui.communicate(timeout=60)
    assert f"MLflow UI: http://127.0.0.1:{port}" in output
    assert ui.returncode == 130
    time.sleep(1)
    with pytest.raises(OSError):
        _experiments(port)  # nothing left listening


def test_ui_without_stores_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    refused = subprocess.run(
        [sys.executable, "-m", "slimsweep.sweeps.cli", "ui", f"sweep.dir={empty}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "no sweeps yet" in refused.stderr
    assert not empty.exists()
