import traceback

from slimsweep.sweeps.errors import last_line, with_cause


def _failure(raise_it) -> str:
    try:
        raise_it()
    except Exception as error:
        return with_cause(error, traceback.format_exc())
    raise AssertionError("nothing was raised")


def test_a_wrapped_failure_ends_with_its_real_cause() -> None:
    def wrapped() -> None:
        try:
            raise KeyError("pixels")
        except KeyError as error:
            raise RuntimeError("export failed.\n(See the stack trace above.)") from error

    text = _failure(wrapped)
    assert text.startswith("Traceback") and "RuntimeError: export failed." in text
    assert last_line(text) == "the cause: KeyError: 'pixels'"


def test_a_plain_failure_keeps_its_own_last_line() -> None:
    def plain() -> None:
        raise ValueError("sparsity=1.5 is out of range")

    assert last_line(_failure(plain)) == "ValueError: sparsity=1.5 is out of range"
