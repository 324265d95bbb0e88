"""Real servers on 127.0.0.1 for the shared-state tests: PostgreSQL from Debian's package
(a throwaway cluster made with initdb) and `mlflow server` behind MLflow's basic-auth app.
Missing PostgreSQL skips outside CI and fails in it (`make test` installs it as root)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

ADMIN = ("admin", "slimsweep-Test-Pa55")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            assert server.poll() is None, "the server exited early"
            time.sleep(1)


def served_predictions(model_uri: str, tracking_uri: str, inputs: dict[str, Any]) -> Any:
    """What `mlflow models serve` answers for `inputs`, the model loaded from the store."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        # as in an activated venv: the server starts the venv's own uvicorn
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "models", "serve"),
            *("-m", model_uri, "--env-manager", "local"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", server)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": inputs}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=60)


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL cluster on a free port; yields the URL prefix `postgresql://user@host:port`
    (add `/database`; `create_database` makes one). Its folder is one of its own under /tmp:
    the `postgres` user cannot enter pytest's (root's, mode 700)."""
    binaries = _postgres_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run PostgreSQL; `make test` installs it as root")
        pytest.skip("PostgreSQL (initdb) is not installed")
    folder = Path(tempfile.mkdtemp(prefix="slimsweep-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "cwd": folder}
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "slimsweep", "-A", "trust"]
    subprocess.run(_as_postgres_user(initdb), **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    control = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")]
    subprocess.run(_as_postgres_user([*control, "-o", options, "-w", "start"]), **run)
    try:
        yield f"postgresql://slimsweep@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres_user([*control, "-m", "immediate", "stop"]), cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


class MlflowServer:
    """`mlflow server --app-name basic-auth` with a PostgreSQL backend and its own artifact
    folder; stopped and started again on the same port by the tests."""

    def __init__(self, backend: str, auth_database: str, folder: Path) -> None:
        self.port, self.folder, self.backend = free_port(), folder, backend
        self.uri = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = {auth_database}\n"
            f"admin_username = {ADMIN[0]}\n"
            f"admin_password = {ADMIN[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        self.env = {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "slimsweep-tests",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "server", "--app-name", "basic-auth", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--backend-store-uri", self.backend]
        command += ["--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        with open(self.folder / "server.log", "a") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log()}")
            try:
                if requests.get(f"{self.uri}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer in 120 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return (self.folder / "server.log").read_text()[-3000:]

    def client_env(self) -> dict[str, str]:
        """The environment of a process that talks to it: MLflow's own credential variables."""
        return {
            **os.environ,
            "MLFLOW_TRACKING_USERNAME": ADMIN[0],
            "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        }


def interruptible() -> None:
    """A child's `preexec_fn`: SIGINT back to its default, as at a terminal, so that a test's
    Ctrl-C reaches it even when the suite runs where SIGINT is ignored (a background job of
    a non-interactive shell: `bash .ci/run &` hands that down to every process)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
