"""Small helpers shared by the kernel launchers: block sizes, dtype checks, contiguity."""

from __future__ import annotations

import mmap
import warnings

import numpy as np
import torch

#: dtypes every Triton kernel here accepts as input (accumulation is always float32).
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def next_pow2(n: int, minimum: int = 16) -> int:
    """Smallest power of two >= max(n, minimum); compiled Triton rejects tl.dot blocks below 16."""
    n = max(int(n), minimum)
    return 1 << (n - 1).bit_length()


def block_for(n: int, maximum: int, minimum: int = 16) -> int:
    """A power-of-two block size for a dimension of length ``n``, clipped to [minimum, maximum].

    Raises
    ------
    ValueError
        When ``maximum`` is not a power of two >= ``minimum`` (a programming error in a launcher).
    """
    if maximum < minimum or maximum & (maximum - 1):
        raise ValueError(f"block size limit {maximum} must be a power of two >= {minimum}")
    return min(next_pow2(n, minimum), maximum)


def as_float_tensor(x, name: str) -> torch.Tensor:
    """Return ``x`` as a floating tensor (numpy arrays are wrapped without copying)."""
    if not isinstance(x, torch.Tensor):
        try:
            with warnings.catch_warnings():  # read-only memmaps: kernels never write their inputs
                warnings.simplefilter("ignore", UserWarning)
                x = torch.as_tensor(x)
        except (TypeError, RuntimeError, ValueError) as e:
            raise TypeError(
                f"{name} must be a torch.Tensor or array-like of numbers; got {type(x).__name__}."
            ) from e
    if not x.is_floating_point():
        x = x.float()
    return x


def check_2d(x: torch.Tensor, name: str, cols: int | None = None) -> None:
    """Raise ValueError unless ``x`` is 2-D (with ``cols`` columns when given)."""
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor; got shape {tuple(x.shape)}.")
    if cols is not None and x.shape[1] != cols:
        raise ValueError(
            f"{name} has {x.shape[1]} columns but {cols} were expected "
            f"(shape {tuple(x.shape)}); both inputs must share the embedding dimension."
        )


def check_out(out: torch.Tensor | None, shape: tuple[int, ...], like: torch.Tensor) -> None:
    """Validate a caller-provided ``out=`` tensor: shape, float32, device, contiguous."""
    if out is None:
        return
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; expected {tuple(shape)}.")
    if out.dtype != torch.float32:
        raise TypeError(f"out must be float32 (scores accumulate in fp32); got {out.dtype}.")
    if out.device != like.device:
        raise ValueError(f"out is on {out.device} but the inputs are on {like.device}.")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous; pass torch.empty(shape) or call .contiguous().")


def release_rows(array, start: int, stop: int) -> None:
    """Drop the pages of rows [start, stop) of a read-only ``np.memmap`` from this process's memory.

    Streaming over a memmapped store otherwise leaves every page it touched resident (and counted
    in RSS) until the map is closed. Read-only file pages are re-read from the page cache if touched
    again, so this never changes data; anything but a read-only memmap is left alone.
    """
    mm = getattr(array, "_mmap", None)
    if mm is None or getattr(array, "mode", None) != "r" or not hasattr(mm, "madvise"):
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    first = array.ctypes.data + start * array.strides[0] - base
    last = array.ctypes.data + stop * array.strides[0] - base
    page = mmap.PAGESIZE
    lo, hi = -(-first // page) * page, (last // page) * page  # whole pages inside the rows only
    if hi > lo:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
