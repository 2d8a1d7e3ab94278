"""HTML reports: one explanation on one self-contained page, from the library and `cbm report`."""

import base64
import html
import re
import subprocess
import sys

import numpy as np
import pytest

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.edits.preview import load_eval_data
from cbm.explain import contrast
from cbm.io import save_model
from cbm.models.baselines import LinearProbe
from cbm.report import explanation_html, heat_overlay, sample_report


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=120, dim=16, random_state=0)
    names = np.asarray(world.class_names)
    model = LinearProbe().fit(world["train"].X, names[world["train"].y])
    path = tmp_path_factory.mktemp("report") / "model"
    save_model(model, path, note="report fixture")
    rng = np.random.default_rng(0)
    arrays = {}
    for s in ("test", "train"):
        sp = world[s]
        arrays |= {f"X_{s}": sp.X, f"y_{s}": names[sp.y], f"ids_{s}": [f"{s}-{i:03d}" for i in range(len(sp))],
                   f"images_{s}": rng.integers(0, 255, (len(sp), 28, 28), dtype=np.uint8)}
    np.savez(path / "data.npz", **arrays)
    return path, model


def _no_outside_requests(page: str) -> None:
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<script" not in page


def test_page_is_self_contained_with_image_numbers_and_words(model_dir):
    path, model = model_dir
    page = sample_report(model, load_eval_data(path / "data.npz"), "test", 3, versus=model.class_names_[0])
    _no_outside_requests(page)
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert "The model predicts" in page and "Out-of-distribution score" in page
    assert re.search(r"Out-of-distribution score [\d.]+ \(Mahalanobis distance.*the threshold [\d.]+ flags 5%", page)
    assert "and not" in page or "scores higher than" in page
    assert re.search(r"higher than \d+% of the reference images", page)


def test_why_not_in_the_report_is_the_contrast_within_the_training_range(model_dir):
    path, model = model_dir
    data = load_eval_data(path / "data.npz")
    page = sample_report(model, data, "test", 3)
    a = model.transform(data["test"]["X"][3:4])[0]
    true = str(data["test"]["y"][3])
    feasible = contrast(model, a, true=true, reference=model.transform(data["train"]["X"])).summary()
    unbounded = contrast(model, a, true=true).summary()
    assert feasible != unbounded, "row 3 should need the training range, or this test checks nothing"
    assert all(html.escape(line) in page for line in feasible.splitlines())
    assert html.escape(unbounded.splitlines()[-1]) not in page


def test_occlusion_map_is_drawn_over_the_image(model_dir):
    _, model = model_dir
    img = np.zeros((28, 28), np.uint8)
    heat = np.zeros((28, 28))
    heat[:7, :7] = 1.0
    over = np.asarray(heat_overlay(img, heat))
    assert over[2, 2, 0] > 100 and over[20, 20].max() == 0
    page = explanation_html(model, np.ones(16), image=img, concept=model.concept_names_[0], occlusion=heat)
    assert page.count("data:image/png;base64,") == 2 and "red marks regions" in page


def test_cli_writes_a_report(model_dir, tmp_path, capsys):
    path, _ = model_dir
    out = tmp_path / "r.html"
    assert main(["report", str(path), "--sample", "test-005", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    _no_outside_requests(out.read_text())
    assert main(["report", str(path), "--sample", "nope", "-o", str(out)]) == 2
    assert "No sample 'nope'" in capsys.readouterr().err
    assert main(["report", str(path), "--sample", "1", "--versus", "Nothing"]) == 2


def test_help_does_not_import_torch():
    code = ("import sys; from cbm.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False") and "report" in out


def test_token_model_report_draws_the_concepts_attention_map_over_the_image(tmp_path):
    from cbm.bank import ConceptBank
    from cbm.data.evalfile import save_eval_data
    from cbm.models.cct import ConceptCentricTransformer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4, 6)).astype(np.float32)   # 2 x 2 patch tokens
    y = np.array(["a", "b"] * 20)
    model = ConceptCentricTransformer(concepts=ConceptBank(["c0", "c1", "tag"]), spatial_concepts=["tag"],
                                      dim=8, max_epochs=2, device="cpu").fit(X, y)
    images = rng.integers(0, 255, (40, 28, 28), dtype=np.uint8)
    save_eval_data(tmp_path / "data.npz", {"test": {"X": X, "y": y, "images": images}})
    page = sample_report(model, load_eval_data(tmp_path / "data.npz"), "test", 0, concept="tag")
    _no_outside_requests(page)
    assert page.count("data:image/png;base64,") == 2 and "attention map" in page
    assert "where the model attends for tag" in page and "Out-of-distribution score" in page
