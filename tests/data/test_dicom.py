"""DICOM through the one image reader: rescale, window, MONOCHROME1, refusals, no patient tags out."""

import io

import numpy as np
import pytest
from dicom_files import PATIENT_ID, PATIENT_NAME, JPEGBaseline8Bit, write_dicom
from PIL import Image

from cbm.cli import main
from cbm.data import image_folder
from cbm.data.images import ImageTooLargeError, read_image
from cbm.exceptions import DataError

RAMP = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)  # 0..4080, 12-bit values


def gray(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    assert img.mode == "RGB" and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0].astype(int)


def test_without_window_tags_the_image_is_stretched_min_to_max(tmp_path):
    g = gray(read_image(write_dicom(tmp_path / "a.dcm", RAMP)))
    assert g.shape == (16, 16) and g.min() == 0 and g.max() == 255
    assert (np.diff(g.ravel()) >= 0).all()  # order kept


def test_the_window_comes_from_the_files_tags_after_rescale(tmp_path):
    # stored 0..4080 -> HU -1024..3056; a window of centre 40, width 400 shows -160..240 only
    path = write_dicom(tmp_path / "ct.dcm", RAMP, RescaleSlope="1", RescaleIntercept="-1024",
                       WindowCenter="40", WindowWidth="400")
    g = gray(read_image(path)).ravel()
    hu = RAMP.ravel().astype(int) - 1024
    assert (g[hu <= -161] == 0).all() and (g[hu >= 240] == 255).all()
    mid = (hu > -150) & (hu < 230)
    assert mid.sum() > 10 and (g[mid] > 0).all() and (g[mid] < 255).all()
    # centre value -> mid grey
    assert abs(int(g[np.argmin(abs(hu - 40))]) - 128) <= 12


def test_multi_valued_window_tags_use_the_first_value(tmp_path):
    one = write_dicom(tmp_path / "one.dcm", RAMP, WindowCenter="1000", WindowWidth="500")
    two = write_dicom(tmp_path / "two.dcm", RAMP, WindowCenter=["1000", "3000"],
                      WindowWidth=["500", "100"])
    assert (gray(read_image(one)) == gray(read_image(two))).all()


def test_rescale_slope_scales_before_the_window(tmp_path):
    plain = write_dicom(tmp_path / "p.dcm", RAMP, WindowCenter="2000", WindowWidth="1000")
    doubled = write_dicom(tmp_path / "d.dcm", RAMP, RescaleSlope="2", RescaleIntercept="0",
                          WindowCenter="4000", WindowWidth="2000")
    assert np.abs(gray(read_image(plain)) - gray(read_image(doubled))).max() <= 1


def test_monochrome1_is_inverted(tmp_path):
    m2 = gray(read_image(write_dicom(tmp_path / "m2.dcm", RAMP)))
    m1 = gray(read_image(write_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1")))
    assert (m1 == 255 - m2).all() and m1[0, 0] == 255


def test_signed_pixels(tmp_path):
    arr = (RAMP.astype(np.int16) - 2000)
    g = gray(read_image(write_dicom(tmp_path / "s.dcm", arr)))
    assert g.ravel()[0] == 0 and g.ravel()[-1] == 255


def test_dicom_without_suffix_and_uploaded_bytes_are_recognised_by_the_preamble(tmp_path):
    path = write_dicom(tmp_path / "IM0001", RAMP)
    expected = gray(read_image(write_dicom(tmp_path / "b.dcm", RAMP)))
    assert (gray(read_image(path)) == expected).all()
    data = path.read_bytes()
    assert (gray(read_image(data, name="upload")) == expected).all()
    assert (gray(read_image(io.BytesIO(data))) == expected).all()


def test_multi_frame_is_refused_naming_the_file(tmp_path):
    path = write_dicom(tmp_path / "cine.dcm", np.stack([RAMP] * 3), frames=3)
    with pytest.raises(DataError, match=r"'.*cine\.dcm' is a multi-frame DICOM \(3 frames\).*"
                                        r"Export the frame"):
        read_image(path)


def test_compressed_without_a_decoder_is_refused_clearly(tmp_path):
    path = write_dicom(tmp_path / "jpeg.dcm", RAMP.astype(np.uint8), syntax=JPEGBaseline8Bit)
    with pytest.raises(DataError, match=r"'.*jpeg\.dcm' is a compressed DICOM \(JPEG Baseline.*\) "
                                        r"and no decoder .*uncompressed DICOM"):
        read_image(path)


def test_the_pixel_cap_is_checked_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "big.dcm", np.zeros((100, 120), np.uint16))
    with pytest.raises(ImageTooLargeError, match=r"'.*big\.dcm' is 120 x 100 = 12,000 pixels, over "
                                                 r"the 10,000-pixel limit"):
        read_image(path, max_pixels=10_000)


def test_damaged_and_missing_dicom_name_the_file_and_never_the_patient(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", RAMP).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(good[:len(good) - 300])
    with pytest.raises(DataError, match=r"cut\.dcm") as err:
        read_image(tmp_path / "cut.dcm")
    assert PATIENT_NAME.split("^")[0] not in str(err.value) and PATIENT_ID not in str(err.value)
    with pytest.raises(DataError, match=r"'.*gone\.dcm' not found"):
        read_image(tmp_path / "gone.dcm")


def test_sixteen_bit_png_and_tiff_still_stretch_to_full_range(tmp_path):
    arr = (RAMP * 16).astype(np.uint16)  # 0..65280
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.tif")
    for name in ("a.png", "a.tif"):
        g = gray(read_image(tmp_path / name))
        assert g.min() == 0 and g.max() == 255 and (np.diff(g.ravel()) >= 0).all()


def test_image_folders_pick_up_dicom_files(tmp_path):
    for cls in ("effusion", "normal"):
        (tmp_path / cls).mkdir()
        write_dicom(tmp_path / cls / "1.dcm", RAMP)
        write_dicom(tmp_path / cls / "2.DCM", RAMP[::-1])
    ds = image_folder(tmp_path)
    assert len(ds) == 4 and ds.classes == ["effusion", "normal"] and not ds.ignored
    assert ds[0].size == (16, 16)


def test_embedding_dicom_never_writes_patient_tags(tmp_path, capsys):
    for cls in ("effusion", "normal"):
        (tmp_path / "scans" / cls).mkdir(parents=True)
        for i in range(2):
            write_dicom(tmp_path / "scans" / cls / f"{i}.dcm", RAMP + 100 * i)
    cache = tmp_path / "cache"
    assert main(["embed", str(tmp_path / "scans"), "--cache-dir", str(cache), "--image-size", "32",
                 "--device", "cpu", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "embedded 4 of 4 images" in out
    written = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in written)
    for secret in (PATIENT_NAME, PATIENT_NAME.split("^")[0], PATIENT_ID, "19400229"):
        assert secret not in out + err
        for p in written:
            assert secret.encode() not in p.read_bytes(), p


def test_colour_dicom_keeps_its_colours(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[:4, :, 2] = 200, 90
    img = read_image(write_dicom(tmp_path / "photo.dcm", rgb, photometric="RGB"))
    assert img.mode == "RGB" and (np.asarray(img) == rgb).all()


@pytest.mark.parametrize("tags", [{"RescaleSlope": "NaN"}, {"RescaleSlope": "1e38"},
                                  {"RescaleIntercept": "-inf"}], ids=["nan-slope", "huge-slope", "inf-intercept"])
def test_rescale_tags_that_give_non_finite_pixels_are_an_error_not_a_black_image(tmp_path, tags):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that NaN/inf are not valid DS values
        path = write_dicom(tmp_path / "scan.dcm", RAMP, **tags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning either: one clear error
        with pytest.raises(DataError, match=r"scan\.dcm' has pixel values that are not finite .*RescaleSlope"):
            read_image(path)


def test_a_non_finite_window_falls_back_to_the_full_range(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_dicom(tmp_path / "w.dcm", RAMP, WindowCenter="NaN", WindowWidth="400")
    assert np.array_equal(gray(read_image(path)), gray(read_image(write_dicom(tmp_path / "p.dcm", RAMP))))


@pytest.mark.parametrize("content", [b"", b"Findings: no acute disease.\n" * 20, bytes(range(256)) * 4],
                         ids=["empty", "text", "binary"])
def test_a_dcm_file_that_is_not_dicom_says_so(tmp_path, content):
    (tmp_path / "report.dcm").write_bytes(content)
    with pytest.raises(DataError, match=r"report\.dcm' is not a DICOM file \(no 'DICM' marker"):
        read_image(tmp_path / "report.dcm")
