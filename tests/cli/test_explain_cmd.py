"""`cbm explain --image`: a file that is not a readable image gets one line naming it."""

import pytest
from PIL import Image

from cbm.cli import main


@pytest.fixture
def bad_images(tmp_path, write_png_bomb):
    (tmp_path / "notes.png").write_text("this is text, not a picture\n")
    Image.effect_noise((64, 64), 40).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:300])
    write_png_bomb(tmp_path / "bomb.png")
    return tmp_path


@pytest.mark.parametrize(("name", "what"), [
    ("notes.png", "is not an image file"),
    ("cut.png", "is damaged or truncated"),
    ("bomb.png", "is 400,000,000 pixels, over the 100,000,000-pixel limit"),
    ("gone.png", "not found"),
])
def test_unreadable_image_is_one_line_naming_the_file(bad_images, tmp_path, capsys, name, what):
    assert main(["explain", str(tmp_path / "no-model"), "--image", str(bad_images / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cbm explain: error: Image") and "\n" not in err
    assert name in err and what in err


def test_the_pixel_cap_is_an_option(bad_images, capsys):
    assert main(["explain", "m", "--image", str(bad_images / "full.png"), "--max-pixels", "100"]) == 2
    assert "64 x 64 = 4,096 pixels, over the 100-pixel limit" in capsys.readouterr().err
