import optuna
from rich.console import Console

from slimsweep.sweeps.progress import LineProgress, LiveProgress
from slimsweep.sweeps.results.rows import read_results


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "size_bytes"])
    for values in ([0.98, 900.0], [0.97, 200.0], [0.90, 300.0]):
        study.add_trial(optuna.trial.create_trial(values=values))
    return study


def _events(progress: LineProgress) -> None:
    progress.begin(6)
    for number in (0, 1, 2):
        progress.started(number, f"recipe {number}")
    progress.finished(0, {"accuracy": 0.98, "size_bytes": 900.0}, read_results(_study()))
    progress.failed(1, "RuntimeError: boom")


def test_quiet_lines_keep_only_failures() -> None:
    lines: list[str] = []
    _events(LineProgress(lines.append, quiet=True))
    assert lines == ["trial 1 failed: RuntimeError: boom"]
    lines.clear()
    _events(LineProgress(lines.append))
    assert len(lines) == 5 and lines[3] == "trial 0 done: accuracy=0.98, size_bytes=900"


def test_live_panel_counts_trials_and_shows_the_front() -> None:
    console = Console(record=True, width=140, force_terminal=False)
    progress = LiveProgress(console)
    _events(progress)
    panel = progress.render()
    progress.close()
    console.print(panel)
    text = console.export_text()
    assert "trial 1 failed: RuntimeError: boom" in text
    for expected in (
        "done 1",
        "running 1",
        "failed 1",
        "remaining 3",
        "front 2",
        "best accuracy 0.98",
        "best size_bytes 200",
    ):
        assert expected in text, expected
