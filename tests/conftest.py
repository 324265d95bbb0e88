"""Shared fixtures: the digits task, its data and one trained baseline for the whole session."""

from pathlib import Path

import pytest
import torch

from slimsweep.sweeps.config import compose
from slimsweep.sweeps.task import TaskData, build_task, load_baseline
from slimsweep.sweeps.tasks.digits_cnn import DigitsCNNTask

# The task node exactly as `slimsweep run` composes it, so every test and every sweep in the
# session shares one trained baseline through the cache (keyed by this config).
DIGITS_CONFIG = compose([])["task"]


@pytest.fixture(scope="session")
def baseline_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("baseline-cache")


@pytest.fixture(scope="session")
def digits_task() -> DigitsCNNTask:
    return build_task(DIGITS_CONFIG)


@pytest.fixture(scope="session")
def digits_data(digits_task: DigitsCNNTask) -> TaskData:
    return digits_task.load_data()


@pytest.fixture(scope="session")
def trained_digits(
    digits_task: DigitsCNNTask, digits_data: TaskData, baseline_cache: Path
) -> torch.nn.Module:
    return load_baseline(digits_task, digits_data, baseline_cache)
