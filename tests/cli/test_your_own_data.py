"""docs/own-data.md "Your own data", run exactly: folders -> cbm embed -> cbm concepts generate -> cbm train -> cbm explain.

A local open_clip checkpoint (a tiny random-init CLIP saved to a file) stands in for real weights;
class folders have non-ASCII names, and every step must carry them by name (tests/cli/conftest.py).
"""

import re

import numpy as np
from own_data import CLASSES, CONCEPTS, run_cli

from cbm.io import load_model


def test_the_model_has_the_folders_class_names(own_model):
    model = load_model(own_model["model"])
    assert model.class_names_ == sorted(CLASSES)
    assert model.fingerprints_["encoder"]["pretrained"] == str(own_model["checkpoint"].resolve())


def test_labo_learns_each_class_its_own_concepts_by_name(own_model):
    model = load_model(own_model["model"])
    for cls, concepts in CONCEPTS.items():
        row = model.coef_[model.class_names_.index(cls)]
        assert {model.concept_names_[j] for j in np.argsort(row)[::-1][:2]} == set(concepts), cls


def test_explain_a_new_image_rebuilds_the_local_checkpoint_and_names_classes(own_model):
    out = run_cli(["explain", own_model["model"], "--image", own_model["root"] / "photos" / "pantalon" / "3.png"])
    predicted = re.search(r"predicted '([^']+)'", out) or re.search(r'predicted "([^"]+)"', out)
    assert predicted and predicted.group(1) in CLASSES, out
    assert not re.search(r"""(predicted|class) ['"]\d+['"]""", out), out


def test_explain_a_sample_shows_the_true_class_name(own_model):
    out = run_cli(["explain", own_model["model"], "--sample", "0"])
    assert re.search(r"true class ['\"](" + "|".join(map(re.escape, CLASSES)) + ")['\"]", out), out


def test_eval_reads_the_data_npz_train_wrote(own_model):
    out = run_cli(["eval", own_model["model"]])
    assert "test" in out and "val" in out
