"""`slimsweep ui` serves the stores for real on 127.0.0.1: its links land on the trials and
on the front in MLflow's own UI (rendered in headless Chromium), optuna-dashboard draws the
study, and a registered champion is served by `mlflow models serve`."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import optuna
import pytest

from tests.integration.servers import free_port, interruptible, served_predictions, wait_for

pytestmark = pytest.mark.integration

SWEEP = "browse"


def _cli(*args: str, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "slimsweep.sweeps.cli", *args]
    if kwargs.pop("background", False):
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, preexec_fn=interruptible, **kwargs
        )
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def _experiments(port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
    with urllib.request.urlopen(url, timeout=5) as response:
        return [e["name"] for e in json.load(response)["experiments"]]


def _table(page: str) -> dict[str, dict[str, str]]:
    """Run name → {column: shown value} of the runs table MLflow drew. ag-grid draws a row in
    pieces (pinned and scrolling columns) that share a row index."""
    by_index: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    pieces = re.findall(r'role="row"[^>]*row-index="(\d+)"(.*?)(?=role="row"|$)', page, re.S)
    for index, piece in pieces:
        cells = re.findall(r'col-id="([^"]+)"[^>]*>.*?class="ag-cell-value">([^<]*)<', piece)
        by_index.setdefault(index, {}).update(cells)
        name = re.search(r">(trial-\d{4})<", piece)
        if name:
            names[index] = name.group(1)
    return {name: by_index[index] for index, name in names.items()}


def test_ui_serves_the_mlflow_store_and_stops_on_interrupt(tmp_path: Path) -> None:
    mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").create_experiment("my-sweep")
    optuna.create_study(study_name="my-sweep", storage=f"sqlite:///{tmp_path}/optuna.db")
    port = free_port()
    ui = _cli("ui", f"sweep.dir={tmp_path}", "--port", str(port), background=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", ui)
        assert "my-sweep" in _experiments(port)
    finally:
        ui.send_signal(signal.SIGINT)
        output, _ = ui.communicate(timeout=60)
    assert output.startswith(f"MLflow UI: http://127.0.0.1:{port}  (server logs: ")
    assert "Listening at" not in output and "Uvicorn" not in output  # the servers log to a file
    assert (tmp_path / "ui.log").stat().st_size > 0
    assert ui.returncode == 130
    time.sleep(1)
    with pytest.raises(OSError):
        _experiments(port)  # nothing left listening


def test_ui_without_stores_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    refused = _cli("ui", f"sweep.dir={empty}")
    assert refused.returncode == 2 and "no sweeps yet" in refused.stderr
    assert not empty.exists()


def test_links_land_on_the_answer_and_the_champion_is_served(
    tmp_path: Path, baseline_cache: Path, trained_digits, digits_data, browser
) -> None:
    where = f"sweep.dir={tmp_path}"
    sweep = _cli(
        "run",
        "--quiet",
        where,
        f"sweep.name={SWEEP}",
        f"sweep.cache_dir={baseline_cache}",
        "search.n_trials=5",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
    )
    assert sweep.returncode == 0, sweep.stderr
    front = {r["trial"] for r in json.loads(_cli("pareto", SWEEP, where, "--json").stdout)["front"]}
    completed = [
        t.number
        for t in optuna.load_study(
            study_name=SWEEP, storage=f"sqlite:///{tmp_path}/optuna.db"
        ).trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    champion = max(front)
    assert _cli("register", SWEEP, str(champion), where, "--alias", "champion").returncode == 0
    # `slimsweep pareto` prints the links under its table
    assert "viewStateShareKey=slimsweep-runs" in _cli("pareto", SWEEP, where).stdout

    port = free_port()
    ui = _cli("ui", f"sweep.dir={tmp_path}", "--port", str(port), background=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", ui)
        lines = [ui.stdout.readline().strip() for _ in range(6)]
        links = dict(re.findall(r"^(trials|front):\s+(\S+)$", "\n".join(lines), re.M))
        trials = _table(browser.dom(links["trials"], width=2600, wait_ms=20_000))
        shown_front = _table(browser.dom(links["front"], width=2600, wait_ms=20_000))
        dashboard = next(line for line in lines if line.startswith(f"{SWEEP}: http"))
        wait_for(dashboard.split(": ", 1)[1], ui)
        study_page = browser.dom(dashboard.split(": ", 1)[1], wait_ms=15_000)
    finally:
        ui.send_signal(signal.SIGINT)
        ui.communicate(timeout=60)

    # One row per trial, each with every objective filled and its pareto tag; the front alone.
    assert set(trials) == {f"trial-{n:04d}" for n in completed}
    for cells in trials.values():
        for column in ("accuracy", "size_bytes", "latency_ms_median"):
            float(cells[f"metrics.`{column}`"])
        assert cells["tags.`pareto`"] in ("true", "false")
    assert set(shown_front) == {f"trial-{n:04d}" for n in front}
    assert "Pareto Front" in study_page and "main-svg" in study_page  # plotly drew it

    # The registered champion, served over HTTP, answers what its artifact answers in ORT.
    deploy = tmp_path / "deploy"
    assert _cli("export", SWEEP, str(champion), where, "--to", str(deploy)).returncode == 0
    pixels = digits_data.eval[0][0]["pixels"].numpy()
    expected = onnxruntime.InferenceSession(str(deploy / "model.onnx")).run(
        None, {"pixels": pixels}
    )
    predictions = served_predictions(
        f"models:/{SWEEP}@champion", f"sqlite:///{tmp_path}/mlflow.db", {"pixels": pixels.tolist()}
    )
    np.testing.assert_allclose(np.array(predictions["output"]), expected[0], rtol=1e-6, atol=1e-6)
