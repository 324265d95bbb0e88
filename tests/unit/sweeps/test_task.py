import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.sweeps.task import (
    Task,
    baseline_key,
    build_task,
    evaluate,
    load_baseline,
    load_task_data,
)
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNNTask


def test_digits_task_satisfies_the_protocol(digits_task) -> None:
    assert isinstance(digits_task, Task)
    assert isinstance(
        build_task({"_target_": "slimsweep.sweeps.tasks.digits_cnn.DigitsCNNTask"}), Task
    )


def test_splits_are_fixed_by_seed_disjoint_and_complete(digits_data) -> None:
    def rows(split):
        return {p.tobytes() for batch, _ in split for p in batch["pixels"].numpy()}

    again = DigitsCNNTask().load_data()
    for first, second in zip(
        (digits_data.train, digits_data.calibration, digits_data.eval),
        (again.train, again.calibration, again.eval),
        strict=True,
    ):
        assert rows(first) == rows(second)
    train, calibration, held_out = (
        rows(digits_data.train),
        rows(digits_data.calibration),
        rows(digits_data.eval),
    )
    sizes = [
        sum(len(t) for _, t in s)
        for s in (digits_data.train, digits_data.calibration, digits_data.eval)
    ]
    assert sum(sizes) == 1797 and sizes == [1077, 180, 540]
    # the digits set holds a few duplicate images; splits share no more than those
    assert len(train & held_out) <= 5 and len(calibration & held_out) <= 5


def test_baseline_is_large_and_accurate(trained_digits, digits_task, digits_data) -> None:
    assert sum(p.numel() for p in trained_digits.parameters()) >= 100_000

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return (
            trained_digits(**{k: torch.from_numpy(v) for k, v in inputs.items()}).detach().numpy()
        )

    assert evaluate(digits_task, predict, digits_data.eval) >= 0.95


def test_baseline_is_trained_once_then_loaded_from_cache(digits_data, tmp_path: Path) -> None:
    class CountingTask(DigitsCNNTask):
        trainings = 0

        def train_baseline(self, model, data) -> None:
            CountingTask.trainings += 1
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)

    task = CountingTask(epochs=1)
    first = load_baseline(task, digits_data, tmp_path)
    second = load_baseline(CountingTask(epochs=1), digits_data, tmp_path)
    assert CountingTask.trainings == 1
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    load_baseline(CountingTask(epochs=2), digits_data, tmp_path)  # another field, another key
    assert CountingTask.trainings == 2


def test_the_baseline_key_follows_defaults_and_code(tmp_path: Path, monkeypatch) -> None:
    """A default changed in code (not in YAML) or any edit of the task's module trains anew."""
    module = tmp_path / "my_task.py"
    template = (
        "from dataclasses import dataclass\n"
        "from slimsweep.sweeps.tasks.digits_cnn import DigitsCNNTask\n"
        "@dataclass\nclass MyTask(DigitsCNNTask):\n    epochs: int = {epochs}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    keys = []
    for epochs, comment in [(60, ""), (1, ""), (1, "# a comment\n")]:
        module.write_text(template.format(epochs=epochs) + comment)
        sys.modules.pop("my_task", None)
        keys.append(baseline_key(importlib.import_module("my_task").MyTask()))
    assert len(set(keys)) == 3
    assert baseline_key(DigitsCNNTask()) == baseline_key(DigitsCNNTask())


def test_data_is_cached_only_when_the_task_asks_and_keyed_by_what_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from user_task import CachedData, WaveRegression

    first = load_task_data(CachedData(), tmp_path)
    again = load_task_data(CachedData(), tmp_path)
    assert CachedData.loads == 1
    for (inputs, targets), (cached, cached_targets) in zip(first.eval, again.eval, strict=True):
        assert torch.equal(inputs["input"], cached["input"])
        assert torch.equal(targets, cached_targets)
    load_task_data(CachedData(samples=448), tmp_path)  # another field: loaded anew
    monkeypatch.setattr(CachedData, "version", "2")  # what the key names changed: anew
    load_task_data(CachedData(), tmp_path)
    assert CachedData.loads == 3
    load_task_data(WaveRegression(), tmp_path)  # no data_cache_key: never cached
    assert len(list(tmp_path.glob("*.pt"))) == 3  # the three cached loads, nothing more


def test_a_score_that_is_not_a_number_is_refused(digits_data) -> None:
    class BadTask(DigitsCNNTask):
        def score(self, outputs, targets):
            return "high"

    with pytest.raises(TypeError, match="not a finite number"):
        evaluate(BadTask(), lambda inputs: np.zeros((len(inputs["pixels"]), 10)), digits_data.eval)
