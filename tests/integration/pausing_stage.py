"""A plugin stage for the integration tests: a trial that takes a known while, so that a
sweep is still running when a test stops a server or kills a driver."""

import time
from dataclasses import dataclass

from slimsweep.compressors import CompressedModel, StageContext, register_stage


@dataclass(frozen=True)
class PauseConfig:
    seconds: float = 2.0


@register_stage("pause", PauseConfig)
def pause(model: CompressedModel, config: PauseConfig, ctx: StageContext) -> CompressedModel:
    time.sleep(config.seconds)
    return model
