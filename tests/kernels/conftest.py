"""Fixtures for the kernel parity tests.

Every parity test runs once per backend:

* ``torch``: the PyTorch reference path, always.
* ``triton``: the Triton kernels, on CUDA when a GPU is present, or on CPU through Triton's
  interpreter when ``TRITON_INTERPRET=1`` was set before Triton was imported. A plain CPU run gets
  this path from ``test_triton_interpreter.py``, which re-runs the ``triton`` cases in a subprocess
  with the interpreter switched on (it must be set before the kernels are defined).

``CBM_KERNELS`` is set per test, so a Triton case that silently fell back to PyTorch would fail.
Inputs come from a fixed seed (0), so every run tests the same numbers; ``CBM_TEST_SEED=<n>`` runs
the suite on other inputs to hunt for rare failures (the seed is printed, shown on failure).
"""

from __future__ import annotations

import os

import pytest
import torch

from cbm.kernels._dispatch import HAS_TRITON, interpreting

TRITON_ON_CPU = HAS_TRITON and interpreting()
TRITON_ON_GPU = HAS_TRITON and torch.cuda.is_available() and not interpreting()

# (atol, rtol) against a float64 reference computed from the same (rounded) inputs: products of
# fp16/bf16 numbers are exact in fp32, so inputs differ only by accumulation order, except where an
# output is rounded back to the input dtype (see each test).
TOLS = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-4, 1e-4), torch.bfloat16: (1e-4, 1e-4)}
OUTPUT_ROUNDING = {torch.float32: 2e-6, torch.float16: 2**-10, torch.bfloat16: 2**-7}


@pytest.fixture(autouse=True)
def _fixed_seed():
    seed = int(os.environ.get("CBM_TEST_SEED", "0"))
    torch.manual_seed(seed)
    print(f"kernel test seed {seed} (CBM_TEST_SEED={seed} replays it)")
    yield


@pytest.fixture(params=["torch", "triton"])
def backend(request, monkeypatch) -> str:
    """Force one kernel path for the test (``CBM_KERNELS``); skips Triton when it cannot run."""
    if request.param == "triton" and not (TRITON_ON_CPU or TRITON_ON_GPU):
        pytest.skip("Triton path needs CUDA or TRITON_INTERPRET=1 (see test_triton_interpreter.py)")
    monkeypatch.setenv("CBM_KERNELS", request.param)
    return request.param


@pytest.fixture
def device(backend) -> torch.device:
    """Where inputs live: CUDA for the compiled Triton path, else CPU."""
    return torch.device("cuda" if backend == "triton" and TRITON_ON_GPU else "cpu")


def _assert_close(actual, expected, atol: float, rtol: float, what: str = "output") -> None:
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bad = ~torch.isclose(actual, expected, atol=atol, rtol=rtol)
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        err = (actual - expected).abs().nan_to_num(float("inf")).max().item()
        raise AssertionError(
            f"{what}: {int(bad.sum())}/{bad.numel()} elements differ (atol={atol}, rtol={rtol}); "
            f"max abs err {err:.3g}; first at {idx}: "
            f"{[actual[tuple(i)].item() for i in idx]} vs {[expected[tuple(i)].item() for i in idx]}"
        )


@pytest.fixture
def assert_close():
    """``assert_close(actual, expected, atol, rtol, what)``: allclose that says where and how much."""
    return _assert_close
