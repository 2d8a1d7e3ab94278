"""The pixel cap of :func:`cbm.data.images.read_image` (and of the DICOM reader it calls).

Width x height is checked against the cap before any pixel is decoded; an image over it raises
:class:`ImageTooLargeError`. The cap is :data:`DEFAULT_MAX_PIXELS`, ``$CBM_MAX_IMAGE_PIXELS`` or a
caller's ``max_pixels=``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cbm.exceptions import DataError

__all__ = ["DEFAULT_MAX_PIXELS", "HOW_TO_RAISE_THE_CAP", "MAX_PIXELS_ENV", "ImageTooLargeError",
           "check_max_pixels", "default_max_pixels", "too_large"]

#: Default pixel cap (width x height): 100 megapixels, e.g. 10000 x 10000. A decoded image at the
#: cap takes about 300 MB as RGB; bigger ones are skipped (embed) or refused (explain, app).
DEFAULT_MAX_PIXELS = 100_000_000

#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "CBM_MAX_IMAGE_PIXELS"

HOW_TO_RAISE_THE_CAP = f"raise the limit with --max-pixels, max_pixels= or ${MAX_PIXELS_ENV}"


class ImageTooLargeError(DataError):
    """An image has more pixels than the cap; it is refused before its pixels are decoded."""


def too_large(label: str, width: int, height: int, cap: int) -> ImageTooLargeError:
    """The error for an image of ``width x height`` pixels over the cap ``cap``."""
    return ImageTooLargeError(
        f"Image {label!r} is {width} x {height} = {width * height:,} pixels, over the {cap:,}-pixel "
        f"limit; it was not decoded. Resize it, or {HOW_TO_RAISE_THE_CAP}.")


def default_max_pixels() -> int:
    """The pixel cap in force: ``$CBM_MAX_IMAGE_PIXELS`` when set, else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise DataError(f"${MAX_PIXELS_ENV} must be a positive whole number of pixels; got {raw!r}.")
    return int(raw)


def check_max_pixels(value: Any) -> int:
    """``value`` as a positive int pixel cap, or ValueError naming it (None -> the default cap)."""
    if value is None:
        return default_max_pixels()
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"max_pixels must be a positive whole number of pixels; got {value!r}.")
    return int(value)
