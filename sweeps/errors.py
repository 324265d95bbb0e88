"""Errors a user can act on; the CLI prints them as one line, without a traceback."""


class ConfigError(ValueError):
    """A config key has a value slimsweep refuses; raised before any trial launches."""


class SweepError(RuntimeError):
    """A sweep cannot be run or read as asked (locked, unknown, empty)."""


def require_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {names}")


def require_range(
    key: str,
    value: float,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ConfigError(f"{key}={value!r} is out of range; allowed {left}{low}, {high}{right}")


def require_counts(prefix: str, config: object, keys: tuple[str, ...]) -> None:
    """Each of `keys` on `config` is a whole number of at least 1 (bools refused)."""
    for key in keys:
        value = getattr(config, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{prefix}{key}={value!r} must be a whole number of at least 1")
