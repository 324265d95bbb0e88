"""A sweep on a two-raylet Ray cluster whose state is shared: the study in a real
PostgreSQL, MLflow on a real `mlflow server` behind basic-auth. One driver holds the sweep (a
second, from another folder, is refused); the MLflow server away for 20 s loses nothing; a
SIGKILLed driver is continued by the next `slimsweep run` without a trial counted twice."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import requests
from optuna.trial import TrialState

from tests.integration.servers import MlflowServer, create_database, postgres

pytestmark = pytest.mark.integration

SWEEP = "shared"
N_TRIALS = 16  # trials of 2 s or more (pausing_stage.py): the sweep outlasts 20 s away
HERE = Path(__file__).parent
RUN = (sys.executable, "-m", "slimsweep.sweeps.cli", "run")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MlflowServer]]:
    """(the study's PostgreSQL URL, the MLflow server)."""
    folder = tmp_path_factory.mktemp("servers")
    with postgres() as server:
        study_url = create_database(server, "optuna")
        tracking = create_database(server, "mlflow")
        mlflow = MlflowServer(tracking, create_database(server, "mlflow_auth"), folder / "mlflow")
        mlflow.start()
        try:
            yield study_url, mlflow
        finally:
            mlflow.stop()


def test_a_request_without_credentials_gets_401(stores) -> None:
    _, mlflow = stores
    search = f"{mlflow.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=("admin", "wrong"), timeout=10).status_code == 401
    env = mlflow.client_env()
    credentials = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    assert requests.get(search, auth=credentials, timeout=10).status_code == 200


def test_records_of_a_trial_opened_while_the_server_was_away_reach_its_run(
    stores, tmp_path: Path, monkeypatch
) -> None:
    """The spool at the level of one tracker: a run opened late gets the results that were
    sent after it, in order, once; one the server refuses is kept aside, not in the way."""
    from slimsweep.sweeps.results.spool import SpoolingTracker

    _, mlflow = stores
    for name, value in mlflow.client_env().items():
        if name.startswith("MLFLOW_TRACKING_"):
            monkeypatch.setenv(name, value)
    late: dict[int, str] = {}
    tracker = SpoolingTracker(
        mlflow.uri, None, "spool-unit", tmp_path / "spool", lambda n, r: late.update({n: r})
    )
    mlflow.stop()
    try:
        pending = tracker.start_trial(1, {"a": 1}, "recipe", {"c": 1})
        assert pending == "spooled:1" and len(tracker.pending()) == 1
    finally:
        mlflow.start()
    tracker._retry_at = 0  # the next write tries the server at once
    opened = tracker.start_trial(2, {"a": 2}, "recipe", {"c": 2})  # sends the spool first
    assert not tracker.pending() and set(late) == {1}
    tracker.fail_trial(pending, "it broke")  # straight to the run trial 1 got
    run = tracker.client.get_run(late[1])
    assert run.info.status == "FAILED" and run.data.params == {"a": "1"}
    assert run.data.tags["slimsweep.failure"] == "it broke" and opened != late[1]

    tracker._spool(-1, "tag", ("0" * 32, "k", "v"), {})  # for a run the server does not have
    tracker._spool(-1, "tag", (opened, "k", "v"), {})
    assert tracker.flush() == 0  # the refused record is set aside; the one after it is sent
    assert [p.name for p in (tmp_path / "spool" / "refused").iterdir()] == ["00000000-tag.pkl"]
    assert tracker.client.get_run(opened).data.tags["k"] == "v"


def _args(
    address: str, study_url: str, mlflow: MlflowServer, workdir: Path, cache: Path
) -> list[str]:
    return [
        f"cluster.address={address}",
        "cluster.measure_on={target_cpu: 1}",
        f"sweep.dir={workdir}",
        f"sweep.cache_dir={cache}",
        f"sweep.name={SWEEP}",
        f"sweep.storage={study_url}",
        f"tracking.uri={mlflow.uri}",
        f"search.n_trials={N_TRIALS}",
        "search.parallelism=1",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        "runtime.latency.quiet_rounds=1",
        "plugins=[pausing_stage]",
        "space.recipe.prune.stage.choices=[pause]",
        # a pause drawn from a range: no two trials repeat a recipe (a repeat is answered at
        # once, and this sweep must still be running when the test acts)
        "+space.recipe.prune.seconds={low: 2.0, high: 3.0}",
        "~space.baseline",
        "+space.baseline={prune: {stage: pause, seconds: 2.0}, quantize: {precision: fp32}}",
    ]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUN, *args], env=env, cwd=HERE, capture_output=True, text=True, timeout=600
    )


def _driver(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "a") as stderr:
        return subprocess.Popen(
            [*RUN, *args],
            env=env,
            cwd=HERE,  # where the plugin lives
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def _states(study_url: str) -> list[TrialState]:
    try:
        return [t.state for t in optuna.load_study(study_name=SWEEP, storage=study_url).trials]
    except KeyError:  # not created yet
        return []


def _wait_for(what: str, ready, driver: subprocess.Popen, log: Path, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            pytest.fail(f"the driver exited ({driver.returncode}) before {what}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.5)
    pytest.fail(f"no {what} in {timeout} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


def test_one_driver_an_absent_server_and_a_killed_driver_lose_nothing(
    cluster, stores, tmp_path: Path, baseline_cache: Path, trained_digits
) -> None:
    address, study_url, mlflow = cluster[0], *stores
    env = mlflow.client_env()
    workdir, log = tmp_path / "driver", tmp_path / "driver.log"
    args = _args(address, study_url, mlflow, workdir, baseline_cache)
    driver = _driver(args, env, log)
    try:
        _wait_for("completed trial", lambda: TrialState.COMPLETE in _states(study_url), driver, log)

        # A second driver, from another folder on the same stores, is refused: the lease is
        # in the study's database, not in a folder.
        elsewhere = _args(address, study_url, mlflow, tmp_path / "elsewhere", baseline_cache)
        second = _run(elsewhere, env)
        assert second.returncode == 2, second.stderr
        assert f"already being run by another driver (pid {driver.pid} " in second.stderr
        assert str(HERE) in second.stderr

        # The MLflow server away for 20 s: trials go on, their records wait in the spool.
        done_before = _states(study_url).count(TrialState.COMPLETE)
        mlflow.stop()
        time.sleep(20)
        done_while_away = _states(study_url).count(TrialState.COMPLETE) - done_before
        spool = workdir / "spool" / SWEEP
        mlflow.start()
        assert done_while_away >= 1 and list(spool.glob("*.pkl")), _tail(log)

        # The server is back and the driver is sending what waited, when it is SIGKILLed with
        # a trial in flight: the next driver sends the rest, none of it twice.
        _wait_for(
            "a trial in flight",
            lambda: TrialState.RUNNING in _states(study_url),
            driver,
            log,
        )
        time.sleep(3)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = optuna.load_study(study_name=SWEEP, storage=study_url).trials
    killed = [t.number for t in before if t.state == TrialState.RUNNING]

    resumed = _run(args, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "took the sweep over from a driver that died" in resumed.stdout + resumed.stderr

    study = optuna.load_study(study_name=SWEEP, storage=study_url)
    trials = study.trials
    requeued = [t for t in trials if "requeued_from" in t.user_attrs]
    assert {t.user_attrs["requeued_from"] for t in requeued} == set(killed)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(counted) - len(killed) == N_TRIALS  # the killed trial ran again, once
    assert all(t.state != TrialState.RUNNING for t in trials)

    # In MLflow: one run per trial, none twice; every completed trial's run FINISHED with the
    # values Optuna was told, the killed trial's run KILLED.
    import mlflow as mlflow_client

    os.environ.update({k: v for k, v in env.items() if k.startswith("MLFLOW_TRACKING_")})
    client = mlflow_client.MlflowClient(tracking_uri=mlflow.uri)
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], "tags.`slimsweep.role` = 'trial'")
    numbers = [int(run.data.tags["slimsweep.trial"]) for run in runs]
    assert len(numbers) == len(set(numbers))  # no trial logged twice
    # every trial that ran has its run (the killed one may have died before its run was
    # opened); a repeated recipe answered from an earlier trial links that trial's run
    ran = [t for t in trials if "reused_from" not in t.user_attrs]
    assert {t.number for t in ran} - set(numbers) <= set(killed)
    by_number = {int(r.data.tags["slimsweep.trial"]): r for r in runs}
    for trial in trials:
        if "reused_from" in trial.user_attrs:
            original = by_number[trial.user_attrs["reused_from"]]
            run_id = trial.user_attrs["mlflow_run_id"]
            if run_id.startswith("spooled:"):  # the original's run was opened late
                late = study.user_attrs["mlflow_runs_sent_late"]
                run_id = late[str(trial.user_attrs["reused_from"])]
            assert run_id == original.info.run_id
    from slimsweep.sweeps.results.rows import read_results

    linked = {row.trial: row.run_id for row in read_results(study).rows}
    for trial in ran:
        run = by_number.get(trial.number)
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED" and linked[trial.number] == run.info.run_id
            assert run.data.metrics["accuracy"] == trial.values[0]
            assert "slimsweep.artifact_sha256" in run.data.tags
        elif trial.number in killed and trial.number in by_number:
            assert run.info.status == "KILLED"
    assert not list(spool.glob("*.pkl"))
