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


@pytest.fixture(scope="module")
def model_with_data(tmp_path_factory):
    import numpy as np

    from cbm.data import make_concept_world
    from cbm.io import save_model
    from cbm.models.baselines import LinearProbe

    world = make_concept_world(n_classes=3, n_concepts=6, n_samples=90, dim=12, random_state=0)
    names = np.asarray(world.class_names)
    path = tmp_path_factory.mktemp("explain") / "model"
    save_model(LinearProbe().fit(world["train"].X, names[world["train"].y]), path)
    arrays = {}
    for s in ("train", "val", "test"):
        arrays |= {f"X_{s}": world[s].X, f"y_{s}": names[world[s].y],
                   f"ids_{s}": np.asarray([f"{s}-{i:03d}" for i in range(len(world[s]))])}
    np.savez(path / "data.npz", **arrays)
    return path


def test_a_sample_is_shown_with_its_ood_score_scale_and_threshold(model_with_data, capsys):
    assert main(["explain", str(model_with_data), "--sample", "test-003"]) == 0
    out = capsys.readouterr().out
    assert "Out-of-distribution score" in out and "Mahalanobis distance" in out
    assert "flags 5% of validation images, so this image" in out


def test_without_training_embeddings_it_says_the_score_is_not_available(model_with_data, tmp_path, capsys):
    import numpy as np

    with np.load(model_with_data / "data.npz") as z:
        np.savez(tmp_path / "shifted.npz", X_shifted=z["X_test"], y_shifted=z["y_test"])
    assert main(["explain", str(model_with_data), "--sample", "2", "--data", str(tmp_path / "shifted.npz")]) == 0
    assert "out-of-distribution score: not available" in capsys.readouterr().out
