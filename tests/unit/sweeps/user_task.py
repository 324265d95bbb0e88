"""A user's own task, living only in the tests: a small regression MLP on synthetic data.
It is what the README's user-task example shows; slimsweep knows nothing of it."""

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from slimsweep.sweeps.task import Batch, Inputs, TaskData


@dataclass
class WaveRegression:
    name: str = "wave"
    samples: int = 512
    seed: int = 0
    metric: ClassVar[str] = "neg_mse"  # higher is better

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 1),
        )

    def train_baseline(self, model: torch.nn.Module, data: TaskData) -> None:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(60):
            for inputs, targets in data.train:
                loss = self.loss(model(**inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def load_data(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        x = rng.uniform(-1, 1, (self.samples, 4)).astype(np.float32)
        y = (np.sin(3 * x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype(np.float32)
        batches = [self._batch(x[i : i + 64], y[i : i + 64]) for i in range(0, self.samples, 64)]
        return TaskData(train=batches[:6], calibration=batches[6:7], eval=batches[7:])

    def _batch(self, x: np.ndarray, y: np.ndarray) -> Batch:
        return {"input": torch.from_numpy(x)}, torch.from_numpy(y)

    def latency_inputs(self) -> Inputs:
        return {"input": torch.zeros(16, 4)}

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return -float(np.mean((outputs - targets) ** 2))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(outputs, targets)


@dataclass
class NoEvalData(WaveRegression):
    def load_data(self) -> TaskData:
        data = super().load_data()
        return TaskData(data.train, data.calibration, [])


@dataclass
class WrongShape(WaveRegression):
    """Its model pools the batch away: one output row whatever the batch."""

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(4, 1), _MeanOverBatch())


class _MeanOverBatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(0)


@dataclass
class ScoreNotANumber(WaveRegression):
    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return "good"  # type: ignore[return-value]


@dataclass
class NotAPair(WaveRegression):
    def _batch(self, x: np.ndarray, y: np.ndarray) -> Batch:
        return [{"input": torch.from_numpy(x)}, torch.from_numpy(y)]  # type: ignore[return-value]


@dataclass
class NumpyInputs(WaveRegression):
    def _batch(self, x: np.ndarray, y: np.ndarray) -> Batch:
        return {"input": x}, torch.from_numpy(y)  # type: ignore[dict-item]


@dataclass
class MixedBatchSizes(WaveRegression):
    def _batch(self, x: np.ndarray, y: np.ndarray) -> Batch:
        return {"input": torch.from_numpy(x)}, torch.from_numpy(y[:-1])


@dataclass
class LatencyInputsRenamed(WaveRegression):
    def latency_inputs(self) -> Inputs:
        return {"features": torch.zeros(16, 4)}


@dataclass
class WithRecall(WaveRegression):
    """A second quality number, as MiniLM's recall_at_10 beside its cosine."""

    def extra_scores(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return {"max_error": -float(np.abs(outputs - targets).max())}


class _Named(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


@dataclass
class ForwardNamedOtherwise(WaveRegression):
    """forward(features) while the batches say `input`, as a user's own model may."""

    def build_model(self) -> torch.nn.Module:
        return _Named()


class _AnyName(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, **named: torch.Tensor) -> torch.Tensor:
        return self.linear(next(iter(named.values())))


@dataclass
class LatencyInputsRenamedForAnyName(LatencyInputsRenamed):
    """A model that takes any input name: only the signatures' mismatch is wrong."""

    def build_model(self) -> torch.nn.Module:
        return _AnyName()


@dataclass
class CachedData(WaveRegression):
    """Data worth caching: counts its loads; its key names an outside version."""

    loads: ClassVar[int] = 0
    version: ClassVar[str] = "1"

    def load_data(self) -> TaskData:
        CachedData.loads += 1
        return super().load_data()

    def data_cache_key(self) -> str:
        return f"corpus {CachedData.version}"


@dataclass
class SlowData(WaveRegression):
    def load_data(self) -> TaskData:
        time.sleep(0.5)
        return super().load_data()


@dataclass
class ForwardRefusedBeforeData(ForwardNamedOtherwise):
    def load_data(self) -> TaskData:
        raise AssertionError("the data was loaded before the model was tried")
