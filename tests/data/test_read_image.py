"""The one image reader: pixel cap (bombs refused unread), damage named, one conversion everywhere."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from cbm.data import ImageDataset
from cbm.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    default_max_pixels,
    read_image,
    to_rgb,
)
from cbm.exceptions import DataError


@pytest.fixture(scope="module")
def bomb(tmp_path_factory, write_png_bomb):
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_the_bomb_is_small_on_disk_and_claims_400_megapixels(bomb):
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(Image.DecompressionBombError):  # PIL alone raises, which aborted `cbm embed`
        Image.open(bomb)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_20000_square_png_bomb_is_refused_unread(bomb):
    with pytest.raises(ImageTooLargeError, match=r"Image '.*bomb\.png' is 400,000,000 pixels, over the "
                                                 r"100,000,000-pixel limit; it was not decoded"):
        read_image(bomb)


def test_the_cap_is_checked_from_the_header(tmp_path):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(ImageTooLargeError, match=r"'.*big\.png' is 300 x 300 = 90,000 pixels, over the "
                                                 r"10,000-pixel limit.*--max-pixels"):
        read_image(tmp_path / "big.png", max_pixels=10_000)
    assert read_image(tmp_path / "big.png", max_pixels=90_000).size == (300, 300)


def test_the_cap_comes_from_the_environment(tmp_path, monkeypatch):
    assert default_max_pixels() == DEFAULT_MAX_PIXELS == 100_000_000
    Image.new("L", (50, 50)).save(tmp_path / "a.png")
    monkeypatch.setenv("CBM_MAX_IMAGE_PIXELS", "2000")
    with pytest.raises(ImageTooLargeError, match="2,000-pixel limit"):
        read_image(tmp_path / "a.png")
    monkeypatch.setenv("CBM_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(DataError, match=r"CBM_MAX_IMAGE_PIXELS must be a positive whole number.*'lots'"):
        read_image(tmp_path / "a.png")


def test_pils_own_bomb_warning_does_not_decide(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL warns over 1000, errors over 2000
    Image.new("L", (40, 40)).save(tmp_path / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning would abort a run that turns warnings to errors
        assert read_image(tmp_path / "a.png", max_pixels=10_000).size == (40, 40)
    Image.new("L", (50, 50)).save(tmp_path / "b.png")
    with pytest.raises(ImageTooLargeError, match="2,500 pixels, over PIL's decompression-bomb limit of 2,000"):
        read_image(tmp_path / "b.png", max_pixels=10_000)


@pytest.mark.parametrize(("content", "match"), [
    (b"just some text\n", "is not an image file PIL can read"),
    (b"", "is not an image file PIL can read"),
])
def test_non_images_are_named(tmp_path, content, match):
    (tmp_path / "notes.png").write_bytes(content)
    with pytest.raises(DataError, match=rf"Image '.*notes\.png' {match}"):
        read_image(tmp_path / "notes.png")


def test_truncated_and_missing_files_are_named(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buf, format="PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match=r"'.*cut\.png' is damaged or truncated"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(DataError, match=r"'.*gone\.png' not found"):
        read_image(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"'.*' is a folder"):
        read_image(tmp_path)


def test_bytes_and_file_objects_use_the_given_name():
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (1, 2, 3)).save(buf, format="PNG")
    assert read_image(buf.getvalue(), name="up.png").getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(DataError, match="'up.txt' is not an image"):
        read_image(io.BytesIO(b"hello"), name="up.txt")


def test_max_pixels_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_pixels must be a positive whole number.*0"):
        read_image(tmp_path / "x.png", max_pixels=0)


# -- one conversion ------------------------------------------------------------------------------
def test_sixteen_bit_images_are_stretched_not_clipped_to_white():
    arr = np.linspace(1000, 60000, 64 * 8).reshape(8, 64).astype(np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(arr)))  # mode I;16
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    assert 100 < rgb.mean() < 155  # a ramp, not near-white


def test_transparent_images_are_composited_on_white():
    for mode in ("RGBA", "LA", "PA"):
        clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0)).convert(mode)
        assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255), mode
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30] * 256)
    pal.info["transparency"] = 0
    assert to_rgb(pal).getpixel((1, 1)) == (255, 255, 255)


def test_the_dataset_reader_skips_over_the_cap(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    ds = ImageDataset([tmp_path / "a.png"], max_pixels=5000)
    with pytest.raises(ImageTooLargeError):
        ds[0]
    assert ds.fingerprint != ImageDataset([tmp_path / "a.png"]).fingerprint  # other cap, other cache
    assert ds.subset([0]).max_pixels == 5000


def _hard_images(folder):
    """16-bit, 32-bit, palette, transparent-palette and transparent files, as users have them."""
    ramp = np.linspace(0, 1, 24 * 16).reshape(16, 24)
    Image.fromarray((ramp * 50000 + 3000).astype(np.uint16)).save(folder / "i16.png")
    Image.fromarray((ramp * 2e6).astype(np.int32)).save(folder / "i32.tif")
    pal = Image.fromarray((ramp * 200).astype(np.uint8)).convert("P")
    pal.save(folder / "pal.png")
    pal.save(folder / "pal_clear.png", transparency=0)
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, (ramp * 255).astype(np.uint8)
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]]).save(folder / "la.png")
    return sorted(folder.iterdir())


def test_embed_explain_and_app_see_the_same_pixels(tmp_path):
    from cbm.app._images import load_upload
    from cbm.explain import embed_image

    class Recorder:
        def encode_images(self, images, batch_size=64):
            self.seen = np.asarray(images[0])
            return np.zeros((1, 2), np.float32)

    paths = _hard_images(tmp_path)
    modes = {Image.open(p).mode for p in paths}
    assert {"I;16", "I", "P", "RGBA", "LA"} <= modes
    ds = ImageDataset(paths)
    for i, path in enumerate(paths):
        embed = np.asarray(ds[i])                                  # cbm embed
        app = np.asarray(load_upload(path.read_bytes(), path.name))  # the app's Upload
        rec = Recorder()
        embed_image(None, path, encoder=rec)                        # cbm explain --image
        np.testing.assert_array_equal(app, embed, err_msg=path.name)
        np.testing.assert_array_equal(rec.seen, embed, err_msg=path.name)
        assert embed.shape == (16, 24, 3) and embed.std() > 10, path.name  # not flat white/black
    clear = np.asarray(ds[paths.index(tmp_path / "rgba.png")])
    assert clear[0, 0].tolist() == [255, 255, 255]                  # transparent -> white
