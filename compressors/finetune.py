"""The one training loop every recovering stage shares (distillation, QAT, iterative
pruning): the task's own loss on its labels, mixed with distillation from the uncompressed
teacher, over a fixed step budget on the train split. Pruned zeros stay zero."""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle

import torch

from slimsweep.compressors.base import StageContext, on_device
from slimsweep.sweeps.errors import require_range

FeatureLoss = Callable[[], torch.Tensor]  # extra loss terms gathered during a forward


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning budget and its mix of losses, shared by every stage that trains."""

    steps: int = 200
    learning_rate: float = 0.0005
    temperature: float = 4.0  # softens both models' outputs in the distillation loss
    alpha: float = 0.7  # weight of the distillation loss; 1 - alpha goes to the task's loss

    def __post_init__(self) -> None:
        require_range("steps", self.steps, 0, 100_000)
        require_range("learning_rate", self.learning_rate, 0.0, 1.0, low_inclusive=False)
        require_range("temperature", self.temperature, 0.1, 100.0)
        require_range("alpha", self.alpha, 0.0, 1.0)


def soft_target_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Hinton et al.'s KL(teacher ‖ student) on softened logits, scaled by T² so its
    gradients keep their size as T changes."""
    log_student = torch.log_softmax(student / temperature, dim=-1)
    log_teacher = torch.log_softmax(teacher / temperature, dim=-1)
    kl = torch.nn.functional.kl_div(
        log_student, log_teacher, log_target=True, reduction="batchmean"
    )
    return kl * temperature**2


def finetune(
    module: torch.nn.Module,
    ctx: StageContext,
    config: TrainConfig,
    extra_loss: FeatureLoss | None = None,
    extra_parameters: list[torch.nn.Parameter] | None = None,
    keep_zeros: bool = True,
) -> None:
    """Train `module` in place for `config.steps` batches of the train split, on
    `ctx.device` (the module comes back on the CPU). With `keep_zeros`, weights that are
    zero (pruned) stay zero.

    A task may define `loss(outputs, targets)` (hard labels) and
    `distillation_loss(student, teacher, temperature)` (default: soft targets on logits).
    """
    if config.steps == 0:
        return
    hard = getattr(ctx.task, "loss", None)
    soft = getattr(ctx.task, "distillation_loss", soft_target_loss)
    alpha = config.alpha if hard is not None else 1.0
    if alpha > 0 and ctx.teacher is None:
        raise ValueError(
            "distillation (alpha > 0, or a task without loss(outputs, targets)) needs the "
            "teacher; none was given to this stage"
        )
    if not ctx.data.train:
        raise ValueError("fine-tuning needs the task's train split; it is empty")
    torch.manual_seed(ctx.seed)
    module.to(ctx.device)
    masks = {
        p: p != 0
        for p in module.parameters()
        if keep_zeros and p.dim() > 1 and bool((p == 0).any())
    }
    parameters = [*module.parameters(), *(extra_parameters or [])]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    module.train()
    for _, (batch, labels) in zip(range(config.steps), cycle(ctx.data.train)):
        inputs, targets = on_device(batch, ctx.device), labels.to(ctx.device)
        outputs = module(**inputs)
        loss = torch.zeros((), device=ctx.device)
        if ctx.teacher is not None and (alpha > 0 or extra_loss is not None):
            with torch.no_grad():
                teacher_outputs = ctx.teacher.eval()(**inputs)
        if alpha > 0:
            loss = loss + alpha * soft(outputs, teacher_outputs, config.temperature)
        if alpha < 1:
            loss = loss + (1 - alpha) * hard(outputs, targets)
        if extra_loss is not None:
            loss = loss + extra_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for parameter, mask in masks.items():
                parameter.mul_(mask)
        if ctx.after_step is not None:
            ctx.after_step(module)
    module.eval().to("cpu")
