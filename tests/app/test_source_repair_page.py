"""Edit page: the repair at the source shows where the model's own evidence locates the artifact
(before and after) and previews, applies and undoes like any edit."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY, _keys
from cbm.app._images import filled, with_boxes
from cbm.edits.history import EditSession

SOURCE = "Neutralise the concept in the image, before it is embedded (repair at the source)"
TAG = "tag in the corner"


def _bars(n: int, rng: np.random.Generator, tag_rate: tuple[float, float]):
    """Vertical or horizontal bars (28 x 28); a white 6 px tag in the top-left corner, mostly on "vertical"."""
    y = rng.integers(0, 2, n)
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        c, w = rng.integers(11, 17), rng.integers(3, 6)
        bar = (slice(6, 26), slice(c - w // 2, c + w // 2 + 1))
        imgs[i][bar if y[i] == 0 else bar[::-1]] = rng.integers(120, 200)
    tags = rng.random(n) < np.where(y == 0, *tag_rate)
    imgs[tags, 1:7, 1:7] = 255
    return imgs, np.array(["vertical", "horizontal"])[y], tags


@pytest.fixture(scope="module")
def _source_template(tmp_path_factory):
    from cbm.bank import ConceptBank
    from cbm.edits import AddConcept
    from cbm.encoders import create_encoder
    from cbm.io import save_model
    from cbm.models import create_model

    rng = np.random.default_rng(0)
    enc = create_encoder("mobilenet_v2", image_size=64, device="cpu")
    splits = {"train": _bars(80, rng, (0.9, 0.1)), "val": _bars(24, rng, (0.9, 0.1)),
              "shifted": _bars(24, rng, (0.0, 0.9))}
    X = {s: enc.encode_images(imgs) for s, (imgs, _, _) in splits.items()}
    bank = ConceptBank(["vertical bar", "horizontal bar"]).with_prior(
        ["horizontal", "vertical"], np.array([[-1, 1], [1, -1]], np.float32))
    imgs, y, tags = splits["train"]
    model = create_model("knobo", concepts=bank, max_epochs=40, device="cpu").fit(X["train"], y)
    AddConcept.from_examples(TAG, X["train"][tags], X["train"][~tags], {"vertical": 1.0}, model=model).apply(model)
    path = tmp_path_factory.mktemp("source") / "model"
    save_model(model, path, note="source repair page fixture", fingerprints={"encoder": {
        "name": "mobilenet_v2", "pretrained": None, "image_size": 64, "fingerprint": enc.fingerprint}})
    arrays = {}
    for s, (imgs, y, _) in splits.items():
        arrays |= {f"X_{s}": X[s], f"y_{s}": y, f"images_{s}": imgs,
                   f"ids_{s}": np.asarray([f"{s}-{i:03d}" for i in range(len(y))])}
    np.savez(path / "data.npz", **arrays)
    return path


@pytest.fixture
def source_dir(_source_template, tmp_path, monkeypatch):
    import shutil

    path = shutil.copytree(_source_template, tmp_path / "model")
    monkeypatch.setenv("CBM_MODEL_DIR", str(path))
    return path


def test_boxes_are_outlined_and_filled_in_image_pixels():
    image = np.zeros((28, 28), np.uint8)
    image[1:7, 1:7] = 255
    boxed = with_boxes(image, [(0, 0, 16, 16)], size=64)  # the encoder's 64 px input: 16 px = 7 image px
    assert boxed.shape == (28, 28, 3) and tuple(boxed[0, 0]) == (230, 30, 30) and tuple(boxed[3, 3]) == (255,) * 3
    assert filled(image, [(0, 0, 16, 16)], size=64)[:7, :7].max() == 0  # the border's median is black
    assert filled(image, [], size=64).max() == 255


def test_the_page_shows_the_located_tag_previews_and_applies_the_repair(source_dir):
    at = AppTest.from_file(str(ENTRY), default_timeout=120).run()
    at.switch_page("pages/edit.py").run()
    at.radio(key=_keys.EDIT_KIND).set_value(SOURCE).run()
    at.selectbox(key=_keys.EDIT_CONCEPT).set_value(TAG).run()
    at.button(key=_keys.EDIT_PREVIEW).click().run()
    assert not at.exception, at.exception
    text = "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.error])
    assert f"Where the model's own evidence locates {TAG!r}" in text and "Verdict." in text
    assert "This repair cannot be made" not in text
    assert len(at.get("image")) >= 2  # at least one image, before and after
    at.button(key=_keys.EDIT_APPLY).click().run()
    assert not at.exception, at.exception
    assert EditSession(source_dir).model.source_repair_["concept"] == TAG
    at.button(key=_keys.EDIT_UNDO).click().run()
    assert getattr(EditSession(source_dir).model, "source_repair_", None) is None


def test_without_images_the_page_says_what_data_npz_needs(source_dir):
    with np.load(source_dir / "data.npz") as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("images_")}
    np.savez(source_dir / "data.npz", **arrays)
    at = AppTest.from_file(str(ENTRY), default_timeout=120).run()
    at.switch_page("pages/edit.py").run()
    at.radio(key=_keys.EDIT_KIND).set_value(SOURCE).run()
    assert not at.exception, at.exception
    assert any("needs the images of every split" in str(i.value) for i in at.info)


def test_explaining_a_sample_of_a_repaired_model_uses_its_image_or_says_it_needs_one(source_dir, capsys):
    from cbm.cli import main
    from cbm.edits import NeutraliseAtSource

    session = EditSession(source_dir)
    session.apply(NeutraliseAtSource(TAG))
    session.save(note="repair at the source")
    assert main(["explain", str(source_dir), "--sample", "val-000"]) == 0
    assert "sample 'val-000'" in capsys.readouterr().out
    with np.load(source_dir / "data.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "images_val"}
    np.savez(source_dir / "data.npz", **arrays)
    assert main(["explain", str(source_dir), "--sample", "val-000"]) == 2
    err = capsys.readouterr().err
    assert "neutralises 'tag in the corner' at the source" in err and "has no images_val" in err
