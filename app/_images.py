"""Uploads are read by the toolkit's one image reader, so the app sees what ``cbm embed`` sees.

:func:`cbm.data.images.read_image` checks the pixel count from the header before any pixel is
decoded (a tiny file that claims to be 100k x 100k pixels costs nothing), refuses non-images and
truncated files with one message, and converts 16-bit, palette and transparent images exactly as
the embedding store does. Thumbnails from ``data.npz`` are scaled up with nearest-neighbour
sampling so small images stay crisp.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cbm.data.images import read_image
from cbm.exceptions import DataError

#: Largest accepted upload (bytes).
MAX_BYTES = 20 * 1024 * 1024


def load_upload(data: bytes, name: str = "upload", max_pixels: int | None = None,
                max_bytes: int = MAX_BYTES) -> Image.Image:
    """Decode uploaded bytes into an RGB image, or raise one clear :class:`DataError`.

    Parameters
    ----------
    data : bytes
        The uploaded file's content.
    name : str
        File name, used in messages.
    max_pixels : int, optional
        Pixel cap (default: the toolkit's, ``$CBM_MAX_IMAGE_PIXELS`` or 100 million).
    max_bytes : int
        Byte limit; a bigger upload is refused before it is opened.
    """
    if len(data) == 0:
        raise DataError(f"{name!r} is empty. Upload a PNG or JPEG image.")
    if len(data) > max_bytes:
        raise DataError(f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                        "Upload a smaller image.")
    return read_image(data, name=name, max_pixels=max_pixels)


def thumbnail(image: np.ndarray, size: int = 160) -> Image.Image:
    """An (H, W) or (H, W, 3) uint8 array as a PIL image scaled to about ``size`` pixels."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    scale = max(1, size // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def page_icon(size: int = 64) -> Image.Image:
    """The app's favicon, drawn here so the browser fetches it from the app, not a font CDN."""
    from PIL import ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((2, size // 4, size - 3, size - size // 4), fill=(0, 114, 178, 255))
    r = size // 6
    draw.ellipse((size // 2 - r, size // 2 - r, size // 2 + r, size // 2 + r), fill=(255, 255, 255, 255))
    return img


def _scaled(boxes, size: int, shape) -> list[tuple[int, int, int, int]]:
    """Boxes in the encoder's input pixels (side ``size``) as boxes in an image of ``shape``."""
    fy, fx = shape[0] / max(size, 1), shape[1] / max(size, 1)
    return [(int(t * fy), int(left * fx), max(int(t * fy) + 1, int(round(b * fy))),
             max(int(left * fx) + 1, int(round(r * fx)))) for t, left, b, r in boxes]


def with_boxes(image: np.ndarray, boxes, size: int) -> np.ndarray:
    """``image`` (H, W) or (H, W, 3) as RGB uint8 with each box (top, left, bottom, right in an input
    of side ``size``) outlined in red."""
    arr = np.asarray(image)
    rgb = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
    rgb = rgb.astype(np.uint8).copy()
    for t, left, b, r in _scaled(boxes, size, rgb.shape):
        rgb[t, left:r] = rgb[b - 1, left:r] = rgb[t:b, left] = rgb[t:b, r - 1] = (230, 30, 30)
    return rgb


def filled(image: np.ndarray, boxes, size: int) -> np.ndarray:
    """``image`` with each box filled with the median of its border pixels (what the repair neutralises)."""
    arr = np.asarray(image).copy()
    border = np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]], axis=0)
    fill = np.median(border, axis=0).astype(arr.dtype)
    for t, left, b, r in _scaled(boxes, size, arr.shape):
        arr[t:b, left:r] = fill
    return arr

