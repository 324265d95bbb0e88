"""Ctrl-C that lands inside a store's statement can surface as the store's own error."""

from slimsweep.sweeps.engine.driver import _while_interrupted


def _raised_while_handling(first: BaseException) -> Exception:
    try:
        try:
            raise first
        except BaseException:
            raise RuntimeError("database is locked") from None
    except RuntimeError as error:
        return error


def test_an_error_raised_while_a_ctrl_c_unwound_is_the_users_stop() -> None:
    assert _while_interrupted(_raised_while_handling(KeyboardInterrupt()))
    assert not _while_interrupted(_raised_while_handling(ValueError("a real failure")))
    assert not _while_interrupted(RuntimeError("alone"))
