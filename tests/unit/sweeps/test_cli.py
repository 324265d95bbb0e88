import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from slimsweep.sweeps.cli import main


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from slimsweep.sweeps.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'optuna') if m in sys.modules]\n"
        "print(__import__('json').dumps(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_wrong_config_exits_nonzero_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", f"sweep.dir={tmp_path / 'runs'}", "search.n_trials=-1"]) == 2
    assert "search.n_trials=-1 must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_show_config_prints_the_composed_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--show-config", "search.n_trials=7"]) == 0
    assert "n_trials: 7" in capsys.readouterr().out


def test_pareto_without_sweeps_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pareto", f"sweep.dir={tmp_path}"]) == 2
    assert "no sweeps yet" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["pareto", "empty"],
        ["pick", "empty", "--knee"],
        ["export", "empty", "0", "--to", "OUT"],
        ["register", "empty", "0"],
        ["report", "empty"],
    ],
)
def test_a_sweep_without_completed_trials_is_one_clear_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path}/optuna.db")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    assert main([*args, f"sweep.dir={tmp_path}"]) == 2
    error = capsys.readouterr().err
    assert error.strip() == "slimsweep: error: sweep 'empty' has no completed trials yet"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_bad_run_config_is_exactly_one_line_on_stderr(tmp_path: Path) -> None:
    for override in ("search.n_trail=3", "space.recipe.prune.sparsity.high=1.5", "task=nope"):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "slimsweep.sweeps.cli",
                "run",
                f"sweep.dir={tmp_path}",
                override,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stderr.startswith("slimsweep: error: ") and run.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_second_driver_on_the_same_sweep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lease lives in the sweep's storage, so a driver in another folder is refused too."""
    from slimsweep.sweeps.engine.lease import DriverLease

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    held = DriverLease(storage, "held", ttl_s=60)
    held.acquire()  # another driver runs the sweep
    elsewhere = tmp_path / "elsewhere"
    args = ["run", f"sweep.dir={elsewhere}", f"sweep.storage={storage}", "sweep.name=held"]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"slimsweep: error: sweep 'held' is already being run by another driver "
        f"(pid {os.getpid()} on {socket.gethostname()}, in {os.getcwd()}); its lease"
    ), error
    assert not (elsewhere / "mlflow.db").exists()  # refused before the stores were opened
    held.release()
