"""The CCT tag check's geometry: the box it scores is exactly where the demo stamps the tag."""

import numpy as np
import pytest

from cbm.concept_maps import patch_mask
from cbm.demo.cct_tag import concept_targets, tag_box
from cbm.demo.confound import ConfoundConfig, stamp


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_tag_box_is_the_stamped_pixels(corner):
    cfg = ConfoundConfig(corner=corner)
    img = stamp(np.zeros((1, 28, 28), np.uint8), np.ones(1, bool), cfg)[0]
    top, left, bottom, right = tag_box(cfg)
    box = np.zeros((28, 28), bool)
    box[top:bottom, left:right] = True
    np.testing.assert_array_equal(img > 0, box)


def test_the_top_left_tag_covers_the_2x2_corner_patches_of_a_7x7_grid():
    region = patch_mask(tag_box(ConfoundConfig()), (28, 28), (7, 7))
    assert region.sum() == 4 and region[:2, :2].all()


def test_concept_targets_are_one_hot_class_then_tag():
    C = concept_targets(np.array(["Shirt", "Bag"]), np.array([True, False]), ["Bag", "Shirt"])
    np.testing.assert_array_equal(C, [[0, 1, 1], [1, 0, 0]])


@pytest.mark.slow
def test_demo_cct_saves_a_model_for_the_app_and_html_maps_of_the_tag(tmp_path):
    import re

    from cbm.demo.cct_tag import TAG, run_demo_cct
    from cbm.demo.pipeline import quick_config
    from cbm.io import load_model

    cfg = quick_config(n_train=40, n_val=20, n_test=20, n_shifted=20, out_dir=tmp_path)
    lines = []
    res = run_demo_cct(cfg, cache_dir=tmp_path / "cache", log=lines.append,
                       model_params={"dim": 8, "max_epochs": 2, "device": "cpu"})
    model = load_model(res["model_dir"])
    assert model.method == "cct" and model.spatial_concepts == [TAG] and model.token_grid_ == (7, 7)
    assert 0.0 <= res["models"]["cct"]["tag"]["unseen_corner"]["pointing_game"] <= 1.0
    assert set(res["reports"]) <= {"test", "shifted"} and res["reports"]
    for path in res["reports"].values():
        page = open(path, encoding="utf-8").read()
        assert f"where the model attends for {TAG}" in page and not re.search(r"src=['\"]?https?:", page)
    assert "tag concept's attention peaks on the tag" in lines[0] and "cbm app" in lines[1]
