"""Small torch helpers shared by encoders and models: choosing a device, making float32 tensors.

Imports torch: import this module only where torch is needed anyway.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(X: Any, device: str | torch.device = "cpu") -> torch.Tensor:
    """float32 tensor on ``device`` from a numpy array, tensor or memmap (read-only ones too)."""
    if isinstance(X, torch.Tensor):
        return X.detach().to(device=device, dtype=torch.float32)
    with warnings.catch_warnings():  # read-only memmaps are only ever read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)


__all__ = ["as_tensor", "resolve_device"]
