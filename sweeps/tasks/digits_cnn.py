"""A CNN on scikit-learn's bundled 8x8 digits: small, offline, big enough to show compression."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from slimsweep.sweeps.errors import ConfigError, require_counts, require_range
from slimsweep.sweeps.task import Batch, Inputs, TaskData


class DigitsCNN(nn.Module):
    """Three convs and two linears; width 32 gives 226,570 parameters (~0.9 MB in fp32)."""

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * width * 2 * 2, 8 * width),
            nn.ReLU(),
            nn.Linear(8 * width, classes),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pixels))


@dataclass
class DigitsCNNTask:
    name: str = "digits_cnn"
    seed: int = 0
    width: int = 32
    epochs: int = 40
    learning_rate: float = 0.002
    batch_size: int = 64
    eval_fraction: float = 0.3
    calibration_fraction: float = 0.1
    latency_batch_size: int = 32
    metric: ClassVar[str] = "accuracy"
    architecture_family: ClassVar[str] = "conv_student"  # compressors/conv_student.py

    def __post_init__(self) -> None:
        require_counts("task.", self, ("width", "epochs", "batch_size", "latency_batch_size"))
        require_range("task.learning_rate", self.learning_rate, 0.0, 1.0, low_inclusive=False)
        require_range("task.eval_fraction", self.eval_fraction, 0.05, 0.9)
        require_range("task.calibration_fraction", self.calibration_fraction, 0.01, 0.9)
        if self.eval_fraction + self.calibration_fraction >= 0.95:
            raise ConfigError(
                "task.eval_fraction + task.calibration_fraction leaves no training data"
            )

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return DigitsCNN(self.width)

    def load_data(self) -> TaskData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        pixels = (digits.images / 16.0).astype(np.float32)[:, None]
        labels = digits.target.astype(np.int64)
        rest_x, eval_x, rest_y, eval_y = train_test_split(
            pixels, labels, test_size=self.eval_fraction, random_state=self.seed, stratify=labels
        )
        calibration_share = self.calibration_fraction / (1.0 - self.eval_fraction)
        train_x, calib_x, train_y, calib_y = train_test_split(
            rest_x, rest_y, test_size=calibration_share, random_state=self.seed, stratify=rest_y
        )
        return TaskData(
            train=self._batches(train_x, train_y),
            calibration=self._batches(calib_x, calib_y),
            eval=self._batches(eval_x, eval_y),
        )

    def train_baseline(self, model: nn.Module, data: TaskData) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        pixels = torch.cat([inputs["pixels"] for inputs, _ in data.train])
        labels = torch.cat([targets for _, targets in data.train])
        model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                loss = self.loss(model(pixels[index]), labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
        model.eval()

    def latency_inputs(self) -> Inputs:
        generator = torch.Generator().manual_seed(self.seed)
        return {"pixels": torch.rand(self.latency_batch_size, 1, 8, 8, generator=generator)}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float((outputs.argmax(axis=1) == targets).mean())

    def _batches(self, pixels: np.ndarray, labels: np.ndarray) -> list[Batch]:
        return [
            (
                {"pixels": torch.from_numpy(pixels[i : i + self.batch_size])},
                torch.from_numpy(labels[i : i + self.batch_size]),
            )
            for i in range(0, len(labels), self.batch_size)
        ]
