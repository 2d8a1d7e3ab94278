"""One place that decides whether a call runs the Triton kernel or the PyTorch reference.

The Triton path serves a call when Triton is importable, the tensors live on CUDA (or
``TRITON_INTERPRET=1`` is set, which makes Triton run kernels on CPU tensors: slow, for tests), and
the environment variable ``CBM_KERNELS`` is not ``"torch"``. ``CBM_KERNELS=triton`` turns a fallback
into an error, so tests and benchmarks can prove which path ran.

``TRITON_INTERPRET`` is read by ``triton.jit`` when a kernel is *defined*, so it must be set before
``cbm.kernels`` is first imported.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import torch

logger = logging.getLogger("cbm.kernels")

HAS_TRITON = importlib.util.find_spec("triton") is not None
_ENV = "CBM_KERNELS"
_CHOICES = ("auto", "torch", "triton")
_warned: set[tuple[str, str]] = set()


def interpreting() -> bool:
    """True when Triton kernels run through the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def backend_choice() -> str:
    """The value of ``CBM_KERNELS`` ("auto" when unset), validated."""
    value = os.environ.get(_ENV, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ValueError(
            f"Environment variable {_ENV}={value!r} is not a kernel backend. "
            f"Use one of {', '.join(map(repr, _CHOICES))} (or unset it for 'auto')."
        )
    return value


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether the Triton path may serve a call on ``tensors`` (see the module docstring)."""
    if backend_choice() == "torch" or not HAS_TRITON:
        return False
    if interpreting():
        return True
    return all(t.is_cuda for t in tensors if isinstance(t, torch.Tensor))


def fallback(op: str, reason: str) -> None:
    """Record that ``op`` falls back to PyTorch for ``reason`` (logged once per reason).

    Raises
    ------
    RuntimeError
        When ``CBM_KERNELS=triton`` demands the Triton path.
    """
    if backend_choice() == "triton":
        raise RuntimeError(
            f"cbm.kernels.{op}: the Triton kernel cannot serve this call ({reason}) and "
            f"{_ENV}=triton forbids the PyTorch fallback. Unset {_ENV} to allow it."
        )
    if (op, reason) not in _warned:
        _warned.add((op, reason))
        logger.info("cbm.kernels.%s: using the PyTorch path (%s)", op, reason)


def want_triton(op: str, *tensors: torch.Tensor) -> bool:
    """``use_triton`` plus the ``CBM_KERNELS=triton`` check for calls that cannot use Triton."""
    if use_triton(*tensors):
        return True
    if backend_choice() == "triton":
        reason = "triton is not installed" if not HAS_TRITON else (
            "tensors are not on CUDA and TRITON_INTERPRET is not 1"
        )
        fallback(op, reason)
    return False
