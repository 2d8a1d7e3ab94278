"""Safe image handling: uploads that are not images, truncated or decompression bombs are refused.

The pixel count is checked from the header, before any pixel is decoded, so a tiny file that
claims to be 100k x 100k pixels costs nothing. Thumbnails from ``data.npz`` are scaled up with
nearest-neighbour sampling so small images stay crisp.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from cbm.exceptions import DataError

#: Largest accepted upload (bytes) and image size (pixels, width x height).
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000


def load_upload(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS,
                max_bytes: int = MAX_BYTES) -> Image.Image:
    """Decode uploaded bytes into an RGB image, or raise one clear :class:`DataError`.

    Parameters
    ----------
    data : bytes
        The uploaded file's content.
    name : str
        File name, used in messages.
    max_pixels, max_bytes : int
        Limits; a bigger image is refused before it is decoded.
    """
    if len(data) == 0:
        raise DataError(f"{name!r} is empty. Upload a PNG or JPEG image.")
    if len(data) > max_bytes:
        raise DataError(f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                        "Upload a smaller image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise DataError(f"{name!r} is {w} x {h} pixels; the limit is {max_pixels:,} pixels. "
                                "Resize it and upload again.")
            img.load()  # decode now, so a truncated file fails here and not later
            return img.convert("RGB")
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name!r} is too large to decode safely (more than {max_pixels:,} pixels). "
                        "Resize it and upload again.") from None
    except UnidentifiedImageError:
        raise DataError(f"{name!r} is not an image file PIL can read. Upload a PNG or JPEG image.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name!r} is damaged or truncated ({e}). Upload the complete file.") from None


def thumbnail(image: np.ndarray, size: int = 160) -> Image.Image:
    """An (H, W) or (H, W, 3) uint8 array as a PIL image scaled to about ``size`` pixels."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    scale = max(1, size // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img
