"""DICOM images for :func:`cbm.data.images.read_image`: pixels to an 8-bit RGB PIL image.

Only the pixels leave this module: no tag value (PatientName, PatientID, PatientBirthDate, ...)
is returned, logged or put in a message, so caches, manifests and reports built from the image
never carry them. The conversion follows the file's own tags:

1. **Modality LUT**: ``stored * RescaleSlope + RescaleIntercept`` (1 and 0 when absent).
2. **Window**: ``WindowCenter`` / ``WindowWidth`` (the first value when several are given) with
   the DICOM linear window; without them, the image's own min..max.
3. **MONOCHROME1** (bright = low values) is inverted so that bright is white as in MONOCHROME2.

Multi-frame files (``NumberOfFrames > 1``) and compressed pixel data without an installed decoder
are refused with one :class:`~cbm.exceptions.DataError` naming the file.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from cbm.data.pixel_cap import too_large
from cbm.exceptions import DataError

__all__ = ["DICOM_EXTENSIONS", "is_dicom", "read_dicom"]

#: File suffixes read as DICOM (files without one are still recognised by their 'DICM' preamble).
DICOM_EXTENSIONS = (".dcm", ".dicom")

_MAGIC_OFFSET, _MAGIC = 128, b"DICM"


def is_dicom(head: bytes) -> bool:
    """Whether the first 132 bytes of a file carry the DICOM Part 10 'DICM' marker."""
    return len(head) >= _MAGIC_OFFSET + 4 and head[_MAGIC_OFFSET:_MAGIC_OFFSET + 4] == _MAGIC


def _first(value: Any) -> float | None:
    """The first number of a possibly multi-valued tag, or None."""
    if value is None:
        return None
    try:
        if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
            value = value[0] if len(value) else None
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _window(arr: np.ndarray, center: float | None, width: float | None) -> np.ndarray:
    """Values mapped to 0..1: the DICOM linear window (PS3.3 C.11.2.1.2), else min..max."""
    if center is not None and width is not None and width > 1:
        return np.clip((arr - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    if center is not None and width == 1:  # a threshold at the centre
        return (arr >= center - 0.5).astype(np.float32)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    return (arr - lo) / ((hi - lo) or 1.0)


def read_dicom(source: str | BinaryIO, label: str, max_pixels: int) -> Image.Image:
    """One DICOM image as RGB, or a DataError naming ``label`` (never a tag value).

    ``max_pixels`` is checked against Rows x Columns before the pixel data are decoded.
    """
    try:
        return _read_dicom(source, label, max_pixels)
    except DataError:
        raise
    except Exception as e:  # pydicom converts tags lazily: a damaged one can raise anything when first read
        raise DataError(f"Image {label!r} is not a readable DICOM file (a damaged tag: {type(e).__name__}); "
                        "replace or delete it.") from None


def _read_dicom(source: str | BinaryIO, label: str, max_pixels: int) -> Image.Image:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - pydicom is a dependency
        raise DataError(f"Image {label!r} is a DICOM file; install pydicom to read it "
                        "(pip install pydicom).") from None
    not_dicom = DataError(f"Image {label!r} is not a DICOM file (no 'DICM' marker at byte 128 and no "
                          "readable DICOM data; empty, text or misnamed?); replace or delete it.")
    marker = False
    try:
        marker = is_dicom(_head(source))
        if isinstance(source, str):  # from memory: pydicom reads a length field's bytes at once, and a
            with open(source, "rb") as fh:  # file read() reserves them first (8 bytes could ask for 4 GB)
                source = io.BytesIO(fh.read())
        ds = pydicom.dcmread(source, force=True)
    except FileNotFoundError:
        raise DataError(f"Image {label!r} not found; fix the path or remove the entry.") from None
    except IsADirectoryError:
        raise DataError(f"Image {label!r} is a folder, not an image file; pass a file.") from None
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, OverflowError, NotImplementedError):
        if not marker:
            raise not_dicom from None
        raise DataError(f"Image {label!r} is not a readable DICOM file (damaged or truncated); "
                        "replace or delete it.") from None
    if not marker and "PixelData" not in ds:
        raise not_dicom
    if "PixelData" not in ds:
        raise DataError(f"Image {label!r} is a DICOM file without pixel data (a report or "
                        "structured document?); remove it from the image set.")
    frames = _first(ds.get("NumberOfFrames", 1)) or 1
    if frames > 1:
        raise DataError(f"Image {label!r} is a multi-frame DICOM ({int(frames)} frames); cbmkit "
                        "reads single images only. Export the frame you want as its own file.")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > max_pixels:
        raise too_large(label, cols, rows, max_pixels)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except MemoryError:
        raise DataError(f"Image {label!r} needs more memory to decode than is available.") from None
    except Exception as e:  # pydicom raises many types for missing decoders and damaged data
        if syntax is not None and getattr(syntax, "is_compressed", False):
            raise DataError(
                f"Image {label!r} is a compressed DICOM ({syntax.name}) and no decoder for it is "
                "installed; install one (pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg) or convert the file to uncompressed DICOM.") from None
        raise DataError(f"Image {label!r} has DICOM pixel data that cannot be decoded "
                        f"({type(e).__name__}); replace or delete the file.") from None
    return _to_image(np.asarray(arr), ds, label)


def _head(source: str | BinaryIO) -> bytes:
    """The first 132 bytes of a path or a seekable file (whose position is restored)."""
    if isinstance(source, str):
        with open(source, "rb") as fh:
            return fh.read(_MAGIC_OFFSET + 4)
    pos = source.tell()
    try:
        return source.read(_MAGIC_OFFSET + 4)
    finally:
        source.seek(pos)


def _rescaled(arr: np.ndarray, ds: Any, label: str) -> np.ndarray:
    """Stored values -> modality values (RescaleSlope, RescaleIntercept); non-finite ones are an error."""
    slope, intercept = _first(ds.get("RescaleSlope", 1)), _first(ds.get("RescaleIntercept", 0))
    slope = 1.0 if slope is None else slope
    intercept = intercept or 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        values = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        finite = bool(np.isfinite(values).all())
    if not finite:
        raise DataError(f"Image {label!r} has pixel values that are not finite numbers after its rescale "
                        f"tags (RescaleSlope {slope:g}, RescaleIntercept {intercept:g}); the image would "
                        "be blank. Fix the tags or replace the file.")
    return values


def _to_image(arr: np.ndarray, ds: Any, label: str = "image") -> Image.Image:
    """Decoded pixels + the display tags -> 8-bit RGB."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour (pydicom already converted YBR)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise DataError(f"Image {label!r} has colour pixel values that are not finite numbers; "
                            "replace the file.")
        if arr.dtype != np.uint8:
            arr = (_window(arr.astype(np.float32), None, None) * 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(arr[..., :3])).convert("RGB")
    if arr.ndim != 2:
        raise DataError(f"Image {label!r} has DICOM pixel data of shape {arr.shape}, not a single 2-D "
                        "image.")
    values = _rescaled(arr, ds, label)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if not (center is not None and width is not None and np.isfinite(center) and np.isfinite(width)):
        center = width = None  # a missing or non-finite window: stretch min..max instead
    unit = _window(values, center, width)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    gray = np.round(np.asarray(unit, dtype=np.float32) * 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
