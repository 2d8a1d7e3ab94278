"""Small numpy helpers shared across the package: unit-length rows and the softmax.

>>> import numpy as np
>>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
[[0.6, 0.8], [0.0, 0.0]]
>>> softmax(np.array([[0.0, 0.0]])).tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unit_rows(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` (an array, list or torch tensor) scaled to unit L2 norm along its last axis.

    ``dtype`` converts first (None keeps the array's dtype); all-zero rows stay zero.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def softmax(z: Any, dtype: Any = np.float64) -> np.ndarray:
    """Softmax of logits ``z`` along the last axis, computed in float64, returned as ``dtype``."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype, copy=False)


__all__ = ["softmax", "unit_rows"]
