"""Uploads are decoded safely: wrong type, truncation and decompression bombs get one clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cbm.app._images import load_upload, thumbnail
from cbm.exceptions import DataError


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_png_and_jpeg_become_rgb():
    for fmt in ("PNG", "JPEG"):
        img = load_upload(_encode(Image.new("L", (10, 7), 128), fmt), "x")
        assert img.mode == "RGB" and img.size == (10, 7)


def test_pixel_limit_is_checked_before_decoding():
    data = _encode(Image.new("L", (300, 300)))
    with pytest.raises(DataError, match=r"'big.png' is 300 x 300 = 90,000 pixels, over the 10,000-pixel limit"):
        load_upload(data, "big.png", max_pixels=10_000)


def test_byte_limit():
    with pytest.raises(DataError, match="the limit is 0 MB"):
        load_upload(b"x" * 2000, "f", max_bytes=1000)


def test_truncated_file_is_named():
    data = _encode(Image.effect_noise((64, 64), 50))
    with pytest.raises(DataError, match="'cut.png' is damaged or truncated"):
        load_upload(data[: len(data) // 2], "cut.png")


def test_not_an_image():
    with pytest.raises(DataError, match="not an image file"):
        load_upload(b"%PDF-1.4 ...", "doc.pdf")


def test_thumbnail_scales_small_images_crisply():
    img = thumbnail(np.arange(16, dtype=np.uint8).reshape(4, 4), size=40)
    assert img.size == (40, 40)
    assert thumbnail(np.zeros((8, 8, 3), np.float32)).mode == "RGB"


def test_an_uploaded_dicom_is_read_from_its_bytes_without_patient_tags(tmp_path):
    from dicom_files import PATIENT_NAME, write_dicom

    path = write_dicom(tmp_path / "chest.dcm", np.arange(256, dtype=np.uint16).reshape(16, 16) * 16,
                       photometric="MONOCHROME1")
    img = load_upload(path.read_bytes(), name="chest.dcm")
    assert img.mode == "RGB" and img.size == (16, 16)
    assert np.asarray(img)[0, 0, 0] == 255  # MONOCHROME1: the lowest value shows white
    with pytest.raises(DataError, match="'chest.dcm'") as err:
        load_upload(path.read_bytes()[:400], name="chest.dcm")
    assert PATIENT_NAME.split("^")[0] not in str(err.value)
