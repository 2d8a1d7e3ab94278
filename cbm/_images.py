"""Image conversion shared by the datasets (``cbm.data``) and the encoders (``cbm.encoders``).

It sits below both so that neither imports the other for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from cbm.exceptions import DataError

__all__ = ["image_grid", "to_rgb"]


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


def image_grid(images: Any, columns: int = 8, size: int = 96, pad: int = 2) -> Image.Image:
    """Images (PIL or uint8 arrays, any sizes) as one RGB grid of ``size``-pixel tiles, row by row."""
    images = list(images)
    if not images:
        raise ValueError("image_grid got no images; pass at least one.")
    if columns < 1 or size < 1:
        raise ValueError(f"columns and size must be >= 1; got columns={columns!r}, size={size!r}.")
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    grid = Image.new("RGB", (cols * (size + pad) + pad, rows * (size + pad) + pad), (255, 255, 255))
    for i, image in enumerate(images):
        tile = to_rgb(image).copy()
        scale = size / max(tile.size)
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))),
                           Image.NEAREST if scale >= 2 else Image.BILINEAR)
        r, c = divmod(i, cols)
        grid.paste(tile, (pad + c * (size + pad) + (size - tile.width) // 2,
                          pad + r * (size + pad) + (size - tile.height) // 2))
    return grid
