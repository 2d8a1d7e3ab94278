"""edited_copy: previewing the same edit of the same model twice applies it once; the copy is kept only
while the edit lives, and the model itself is never touched."""

import gc

import numpy as np
import pytest

from cbm import edit_eval
from cbm.data import make_concept_world
from cbm.edits import SetWeight
from cbm.edits.preview import edited_copy
from cbm.models import create_model


@pytest.fixture(scope="module")
def model():
    world = make_concept_world(n_classes=3, n_concepts=6, n_samples=90, dim=16, random_state=0)
    return create_model("pcbm", concepts=world.bank, max_iter=200).fit(world["train"].X, world["train"].y)


def test_the_same_edit_of_the_same_model_is_applied_once(model):
    before = model.coef_.copy()
    edit = SetWeight(0, 0, 5.0)
    m2, changes = edited_copy(model, edit)
    again, _ = edited_copy(model, edit)
    assert again is m2 and m2 is not model
    assert m2.coef_[0, 0] == 5.0 and changes
    np.testing.assert_array_equal(model.coef_, before)


def test_a_changed_model_or_another_edit_gets_a_fresh_copy(model):
    edit = SetWeight(0, 0, 5.0)
    first, _ = edited_copy(model, edit)
    assert edited_copy(model, SetWeight(0, 0, 5.0))[0] is not first  # an equal but different edit
    other = create_model("pcbm").set_params(**model.get_params())
    other.__dict__.update({k: v for k, v in model.__dict__.items()})
    other.coef_ = model.coef_ + 1.0
    assert edited_copy(other, edit)[0] is not first


def test_the_cached_copy_goes_with_the_edit(model):
    edit = SetWeight(1, 1, 2.0)
    edited_copy(model, edit)
    key = id(edit)
    assert key in edit_eval._EDITED
    del edit
    gc.collect()
    assert key not in edit_eval._EDITED
