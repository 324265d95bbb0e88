"""Composed config nodes → typed dataclasses, with errors that name the full key."""

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slimsweep.sweeps.errors import ConfigError

Settings = TypeVar("Settings")


def typed(cls: type[Settings], node: Mapping[str, Any], section: str) -> Settings:
    """Check keys and types with OmegaConf's structured configs, then the class's own rules."""
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in node:
        if key not in allowed:
            raise ConfigError(f"unknown key '{section}.{key}'; allowed keys: {', '.join(allowed)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), dict(node))
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        key = f"{section}.{error.full_key}" if error.full_key else section
        raise ConfigError(f"{key}: {error.msg.splitlines()[0]}") from None
