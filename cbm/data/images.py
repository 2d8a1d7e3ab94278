"""The one image reader of cbmkit: ``cbm embed``, ``cbm explain --image`` and the app's Upload.

:func:`read_image` opens a path, bytes or file object and returns an RGB PIL image, or raises one
:class:`~cbm.exceptions.DataError` naming the file and what to do::

    img = read_image("photo.png")                       # RGB, ready for any encoder
    img = read_image(upload_bytes, name="scan.tif")     # same rules for uploads
    read_image("bomb.png")                              # ImageTooLargeError: ... 20000 x 20000 ...

The same rules hold everywhere:

* **Pixel cap.** Width x height is read from the header before any pixel is decoded; an image
  over the cap (default :data:`DEFAULT_MAX_PIXELS`, or ``$CBM_MAX_IMAGE_PIXELS``, or
  ``max_pixels=``) raises :class:`ImageTooLargeError`, so a 400 KB PNG claiming 20000 x 20000
  pixels costs nothing. PIL's own ``DecompressionBombError``/``Warning`` become the same error.
* **One conversion** (:func:`to_rgb`): 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) are
  stretched from their own min..max to 0..255; transparent images (``RGBA``, ``LA``, ``PA``,
  ``P`` with a transparency entry) are composited on white; palette and other modes are
  converted by PIL.
* **DICOM** (``.dcm``/``.dicom`` files, or any file with the 'DICM' marker, uploads included) is
  read by :mod:`cbm.data.dicom`: rescale slope/intercept, the file's window (else min..max),
  MONOCHROME1 inverted; multi-frame and undecodable compressed files refused; no patient tag is
  ever copied out.
* **Damage.** A missing, non-image or truncated file is a ``DataError`` naming the file.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from cbm._images import to_rgb
from cbm.data.dicom import DICOM_EXTENSIONS, is_dicom, read_dicom
from cbm.data.pixel_cap import (
    DEFAULT_MAX_PIXELS,
    HOW_TO_RAISE_THE_CAP,
    MAX_PIXELS_ENV,
    ImageTooLargeError,
    check_max_pixels,
    default_max_pixels,
    too_large,
)
from cbm.exceptions import DataError


def read_image(source: str | os.PathLike | bytes | BinaryIO, *, name: str | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Open, check and fully decode one image as RGB, or raise one ``DataError`` naming it.

    Parameters
    ----------
    source : path, bytes or binary file object
        The image.
    name : str, optional
        How messages name the image (default: the path, or ``"image"``).
    max_pixels : int, optional
        Pixel cap (width x height); default :func:`default_max_pixels`.

    Raises
    ------
    ImageTooLargeError
        More pixels than the cap (checked from the header, before decoding).
    DataError
        Missing, not an image, damaged or truncated.
    """
    cap = check_max_pixels(max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        label, fh = name or "image", io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        label, fh = name or str(source), Path(source)
    else:
        label, fh = name or getattr(source, "name", None) or "image", source
    if _looks_like_dicom(fh, label):
        return read_dicom(str(fh) if isinstance(fh, Path) else fh, label, cap)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap decides
            # a path is read into memory first: a chunk's length field is read at once, and a file
            # read() reserves that many bytes first (a 50-byte PNG could ask for gigabytes)
            with Image.open(io.BytesIO(fh.read_bytes()) if isinstance(fh, Path) else fh) as im:
                w, h = im.size
                if w * h > cap:
                    raise too_large(label, w, h, cap)
                im.load()  # decode now, so a truncated file fails here and not later
                return to_rgb(im)
    except DataError:
        raise
    except Image.DecompressionBombError as e:  # PIL refused it in Image.open, before our check
        n = [int(x) for x in re.findall(r"(\d+) pixels", str(e))] + [0, 0]
        if n[0] > cap or not n[0]:
            why, fix = f"over the {cap:,}-pixel limit", HOW_TO_RAISE_THE_CAP
        else:
            why, fix = (f"over PIL's decompression-bomb limit of {n[1]:,}",
                        "raise PIL.Image.MAX_IMAGE_PIXELS as well as the cap")
        size = f"{n[0]:,} pixels" if n[0] else "too many pixels"
        raise ImageTooLargeError(f"Image {label!r} is {size}, {why}; it was not decoded (too large "
                                 f"to decode safely). Resize it, or {fix}.") from None
    except FileNotFoundError:
        raise DataError(f"Image {label!r} not found; fix the path or remove the entry.") from None
    except IsADirectoryError:
        raise DataError(f"Image {label!r} is a folder, not an image file; pass a file.") from None
    except UnidentifiedImageError:
        raise DataError(f"Image {label!r} is not an image file PIL can read; use a PNG, JPEG, "
                        "WebP, BMP, GIF or TIFF file, or remove it.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"Image {label!r} is damaged or truncated ({e}); replace or delete the "
                        "file.") from None
    except MemoryError:
        raise DataError(f"Image {label!r} needs more memory to decode than is available; resize it "
                        "or lower the cap (--max-pixels).") from None


def _looks_like_dicom(fh: Path | BinaryIO, label: str) -> bool:
    """A ``.dcm``/``.dicom`` path, or any file whose header carries the 'DICM' marker."""
    if isinstance(fh, Path):
        if fh.suffix.lower() in DICOM_EXTENSIONS:
            return True
        try:
            with open(fh, "rb") as f:
                return is_dicom(f.read(132))
        except OSError:
            return False  # missing or a folder: the PIL branch names the problem
    try:
        pos = fh.tell()
        head = fh.read(132)
        fh.seek(pos)
    except (OSError, AttributeError, ValueError):
        return False
    return is_dicom(head)


__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "ImageTooLargeError", "check_max_pixels",
           "default_max_pixels", "read_image", "to_rgb", "too_large"]
