"""Image conversion shared by the datasets (``cbm.data``) and the encoders (``cbm.encoders``).

It sits below both so that neither imports the other for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from cbm.exceptions import DataError

__all__ = ["to_rgb"]


def to_rgb(image: Any) -> Image.Image:
    """A PIL image or uint8 array (H, W), (H, W, 1|3|4) as an RGB PIL image; others pass through."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise DataError(f"Image arrays must be uint8 (0-255); got dtype {arr.dtype}. Convert with "
                            "(x * 255).clip(0, 255).astype(np.uint8) first.")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        image = Image.fromarray(arr)
    if not isinstance(image, Image.Image):
        return image
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        arr = np.asarray(image, dtype=np.float32)
        lo = float(arr.min()) if arr.size else 0.0
        span = float(arr.max() - lo) if arr.size else 0.0
        image = Image.fromarray(((arr - lo) / (span or 1.0) * 255).astype(np.uint8))
    return image.convert("RGB")
