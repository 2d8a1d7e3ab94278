"""Small torch helpers shared by encoders and models: choosing a device, making float32 tensors.

Imports torch: import this module only where torch is needed anyway.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when present, else CPU; any other device must exist on this machine.

    Raises ValueError naming the device, and the ones there are, for an unknown name, a GPU on a
    machine without one, or a GPU index past the last one.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"Device {device!r} is a CUDA GPU, but this machine has none that torch can use; "
                             "use device 'cpu' or 'auto' (a GPU when there is one).")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"Device {device!r} does not exist: this machine has {n} CUDA GPU(s), "
                             f"cuda:0 to cuda:{n - 1}; use one of them or 'auto'.")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"Device {device!r} (Apple GPU) is not available on this machine; use 'cpu' or 'auto'.")
    return dev


def as_tensor(X: Any, device: str | torch.device = "cpu") -> torch.Tensor:
    """float32 tensor on ``device`` from a numpy array, tensor or memmap (read-only ones too)."""
    if isinstance(X, torch.Tensor):
        return X.detach().to(device=device, dtype=torch.float32)
    with warnings.catch_warnings():  # read-only memmaps are only ever read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)


__all__ = ["as_tensor", "resolve_device"]
