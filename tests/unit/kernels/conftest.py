"""The kernels run compiled on a CUDA GPU and under Triton's interpreter on CPU tensors
everywhere else. Triton reads TRITON_INTERPRET when a kernel is decorated, so it is set here,
before any test module imports `kernels.triton_mm`."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _assert_close_at(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """Within two units of `dtype`'s rounding at the output's scale: the kernel and the
    reference differ only in summation order and in where the result is rounded."""
    assert expected.abs().max() > 0, "a test on zeros proves nothing"
    scale = float(expected.float().abs().max())
    error = float((actual.float() - expected.float()).abs().max())
    assert error <= 2 * torch.finfo(dtype).eps * scale, (error, scale)


@pytest.fixture(scope="session")
def assert_close_at():  # noqa: ANN201
    return _assert_close_at
