"""Errors a user can act on; the CLI prints them as one line, without a traceback."""


class ConfigError(ValueError):
    """A config key has a value slimsweep refuses; raised before any trial launches."""


class SweepError(RuntimeError):
    """A sweep cannot be run or read as asked (locked, unknown, empty)."""


class SlimsweepWarning(UserWarning):
    """Something a trial did that works but costs what the user may not expect (raised in a
    worker, shown by the driver beside the trial and tagged on its MLflow run)."""


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


def last_line(text: str) -> str:
    """The last non-blank line of a traceback or message: what went wrong, in one line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def with_cause(error: BaseException, traceback_text: str) -> str:
    """A failure's traceback, ending with its real cause in one line: the deepest chained
    exception's type and first line (libraries such as torch end their own message with a
    note, and wrap the cause in an exception of their own)."""
    root, seen = error, {id(error)}
    while (
        deeper := root.__cause__ or (None if root.__suppress_context__ else root.__context__)
    ) is not None and id(deeper) not in seen:
        root = deeper
        seen.add(id(root))
    message = next((line.strip() for line in str(root).splitlines() if line.strip()), "")
    cause = f"{type(root).__name__}: {message}" if message else type(root).__name__
    if last_line(traceback_text) == cause:
        return traceback_text
    return f"{traceback_text.rstrip()}\nthe cause: {cause[:500]}\n"
