"""A plugin stage for the integration tests: fails on demand, the way a user's stage might."""

from dataclasses import dataclass

from slimsweep.compressors import CompressedModel, StageContext, register_stage


@dataclass(frozen=True)
class ExplodeConfig:
    message: str = "deliberate failure for the test"


@register_stage("explode", ExplodeConfig)
def explode(model: CompressedModel, config: ExplodeConfig, ctx: StageContext) -> CompressedModel:
    raise RuntimeError(config.message)
