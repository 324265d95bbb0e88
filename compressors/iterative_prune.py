"""Iterative magnitude pruning (Zhu & Gupta, 2017): reach the target sparsity in steps,
fine-tuning between them so the network recovers from each cut before the next. The
sparsity after step k of n follows the cubic schedule s·(1 - (1 - k/n)³), which prunes
hard while there is redundancy and gently near the target, or a linear one."""

from dataclasses import dataclass

from slimsweep.compressors.base import CompressedModel, StageContext, register_stage
from slimsweep.compressors.finetune import TrainConfig, finetune
from slimsweep.compressors.magnitude_prune import MagnitudePruneConfig, magnitude_prune
from slimsweep.sweeps.errors import require_choice, require_range


@dataclass(frozen=True)
class IterativePruneConfig(TrainConfig):
    sparsity: float = 0.9
    scope: str = "global"
    iterations: int = 4  # prune-then-fine-tune rounds; `steps` is the fine-tune per round
    schedule: str = "cubic"

    def __post_init__(self) -> None:
        super().__post_init__()
        MagnitudePruneConfig(self.sparsity, self.scope)  # same checks as one-shot pruning
        require_range("iterations", self.iterations, 1, 100)
        require_choice("schedule", self.schedule, ("cubic", "linear"))


def sparsity_schedule(target: float, iterations: int, schedule: str) -> list[float]:
    progress = [(k + 1) / iterations for k in range(iterations)]
    if schedule == "linear":
        return [target * p for p in progress]
    return [target * (1 - (1 - p) ** 3) for p in progress]


@register_stage("iterative_prune", IterativePruneConfig)
def iterative_prune(
    model: CompressedModel, config: IterativePruneConfig, ctx: StageContext
) -> CompressedModel:
    for sparsity in sparsity_schedule(config.sparsity, config.iterations, config.schedule):
        model = magnitude_prune(model, MagnitudePruneConfig(sparsity, config.scope), ctx)
        finetune(model.module, ctx, config)
    return model
