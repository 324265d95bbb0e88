"""Knowledge distillation (Hinton et al., 2015): train the model in the recipe, often a
pruned or smaller student, on the uncompressed teacher's softened outputs mixed with the
task's labels; optionally also match hidden features (FitNets / TinyBERT), through a
learned projection where the student's features are narrower."""

from dataclasses import dataclass

import torch

from slimsweep.compressors.base import CompressedModel, StageContext, on_device, register_stage
from slimsweep.compressors.finetune import TrainConfig, finetune
from slimsweep.sweeps.errors import ConfigError, require_range


@dataclass(frozen=True)
class DistillConfig(TrainConfig):
    # comma-separated module names whose outputs the student matches; "a>b" matches the
    # student's module a to the teacher's b (a 3-layer student's layer 1 to layer 3, say)
    features: str = ""
    feature_weight: float = 0.0  # weight of the feature-matching (MSE) loss

    def __post_init__(self) -> None:
        super().__post_init__()
        require_range("feature_weight", self.feature_weight, 0.0, 1000.0)
        if self.feature_weight > 0 and not self.names:
            raise ConfigError("feature_weight > 0 needs features: the modules to match")

    @property
    def names(self) -> list[tuple[str, str]]:
        """(student module, teacher module) pairs."""
        pairs = [item.strip().partition(">") for item in self.features.split(",")]
        return [(s.strip(), (t or s).strip()) for s, _, t in pairs if s.strip()]


class FeatureMatch:
    """Records the paired modules' outputs of student and teacher on each forward and gives
    the mean squared error between them, projecting the student's channels when needed."""

    def __init__(
        self, student: torch.nn.Module, teacher: torch.nn.Module, pairs: list[tuple[str, str]]
    ) -> None:
        self.seen: dict[tuple[str, int], torch.Tensor] = {}
        self.pairs = pairs
        self.handles = [
            model.get_submodule(pair[side]).register_forward_hook(self._recorder(role, i))
            for side, (role, model) in enumerate((("student", student), ("teacher", teacher)))
            for i, pair in enumerate(pairs)
        ]
        self.projections: dict[int, torch.nn.Linear] = {}

    def _recorder(self, role: str, index: int):  # noqa: ANN202
        def record(_: torch.nn.Module, __: tuple, output: torch.Tensor | tuple) -> None:
            # transformer blocks may return (hidden states, ...)
            self.seen[role, index] = output[0] if isinstance(output, tuple) else output

        return record

    @staticmethod
    def _channels_last(features: torch.Tensor) -> torch.Tensor:
        return features.movedim(1, -1) if features.dim() == 4 else features

    def prepare(
        self, student: torch.nn.Module, teacher: torch.nn.Module, inputs: dict, device: str
    ) -> None:
        """Create the projections (one forward, on `device`, to learn the widths)."""
        with torch.no_grad():
            student.to(device)(**on_device(inputs, device))
            teacher(**on_device(inputs, device))
        student.to("cpu")
        for i in range(len(self.pairs)):
            s = self._channels_last(self.seen["student", i]).shape[-1]
            t = self._channels_last(self.seen["teacher", i]).shape[-1]
            if s != t:
                self.projections[i] = torch.nn.Linear(s, t, bias=False, device=device)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for projection in self.projections.values() for p in projection.parameters()]

    def loss(self) -> torch.Tensor:
        total = torch.zeros((), device=self.seen["student", 0].device)
        for i in range(len(self.pairs)):
            student = self._channels_last(self.seen["student", i])
            teacher = self._channels_last(self.seen["teacher", i]).detach()
            if i in self.projections:
                student = self.projections[i](student)
            total = total + torch.nn.functional.mse_loss(student, teacher)
        return total / len(self.pairs)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@register_stage("distill", DistillConfig)
def distill(model: CompressedModel, config: DistillConfig, ctx: StageContext) -> CompressedModel:
    if ctx.teacher is None:
        raise ValueError("distill needs the uncompressed teacher; none was given")
    if config.feature_weight == 0:
        finetune(model.module, ctx, config)
        return model
    match = FeatureMatch(model.module, ctx.teacher, config.names)
    try:
        match.prepare(model.module, ctx.teacher, ctx.data.train[0][0], ctx.device)
        finetune(
            model.module,
            ctx,
            config,
            extra_loss=lambda: config.feature_weight * match.loss(),
            extra_parameters=match.parameters(),
        )
    finally:
        match.close()
    return model
