"""Stopping a fine-tuning trial early: every `every` training steps its quality is read on a
few eval batches, and a trial below `floor` × the baseline's quality (on the same batches)
stops there. The driver records it PRUNED, with the reason and the qualities it read."""

import numpy as np
import torch

from slimsweep.compressors.base import StoppedEarly
from slimsweep.sweeps.settings import EarlyStopSettings
from slimsweep.sweeps.task import Batch, evaluate

EVAL_BATCHES = 4  # enough to tell a collapsed model from a recovering one, cheaply


def quality_of(task: object, module: torch.nn.Module, batches: list[Batch]) -> float:
    """The task's metric of a torch module in training, read in eval mode on its device."""
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
        return module(**tensors).detach().float().cpu().numpy()

    try:
        with torch.no_grad():
            return evaluate(task, predict, batches)
    finally:
        module.train(was_training)


class EarlyStop:
    """The `after_step` of a trial's stages: counts steps across stages and rounds."""

    def __init__(
        self, task: object, batches: list[Batch], baseline: float, settings: EarlyStopSettings
    ) -> None:
        self.task, self.batches = task, batches[:EVAL_BATCHES]
        self.baseline, self.settings = baseline, settings
        self.steps = 0
        self.reports: list[tuple[int, float]] = []

    def __call__(self, module: torch.nn.Module) -> None:
        self.steps += 1
        if self.steps % self.settings.every:
            return
        quality = quality_of(self.task, module, self.batches)
        self.reports.append((self.steps, quality))
        floor = self.settings.floor * self.baseline
        if quality < floor:
            raise StoppedEarly(
                f"quality {quality:.4g} after {self.steps} fine-tuning steps is below "
                f"search.early_stop.floor={self.settings.floor:g} x the baseline's "
                f"{self.baseline:.4g}",
                list(self.reports),
            )
