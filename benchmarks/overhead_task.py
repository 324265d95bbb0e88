"""The small tabular classifier of issue 13 (an MLP on 30 features, 2 classes), as a user
writes it from the README: synthetic, seeded data, so the benchmark needs no download."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from slimsweep.sweeps.task import TaskData


class TabularMLP(torch.nn.Module):
    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 2),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


@dataclass
class TabularTask:
    name: str = "tabular"
    features: int = 30
    hidden: int = 64
    samples: int = 1024
    epochs: int = 20
    seed: int = 0
    metric: ClassVar[str] = "accuracy"

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return TabularMLP(self.features, self.hidden)

    def train_baseline(self, model: torch.nn.Module, data: TaskData) -> None:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(self.epochs):
            for inputs, targets in data.train:
                loss = self.loss(model(**inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def load_data(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        x = rng.normal(size=(self.samples, self.features)).astype(np.float32)
        direction = rng.normal(size=self.features)
        y = (x @ direction + 0.5 * np.sin(3 * x[:, 0]) > 0).astype(np.int64)
        batches = [
            ({"features": torch.from_numpy(x[i : i + 64])}, torch.from_numpy(y[i : i + 64]))
            for i in range(0, self.samples, 64)
        ]
        return TaskData(train=batches[:10], calibration=batches[10:12], eval=batches[12:])

    def latency_inputs(self) -> dict[str, torch.Tensor]:
        return {"features": torch.zeros(1, self.features)}

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean(outputs.argmax(axis=1) == targets))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(outputs, targets)
