"""Adding a concept from examples: a CAV fitted on embeddings of images that show it and that don't."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score as roc_auc
from world_models import fit_on_world

from cbm.data import make_concept_world
from cbm.edits import AddConcept, Edit
from cbm.edits.preview import EvalSet, preview
from cbm.exceptions import DataError


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=300, dim=32, random_state=0)


@pytest.fixture
def model(world):
    return fit_on_world(world, max_epochs=60)


def _picked(world, j: int, n: int = 12):
    """Training embeddings of ``n`` images that show concept ``j`` and ``n`` that don't."""
    tr = world["train"]
    on, off = np.flatnonzero(tr.concepts[:, j] > 0), np.flatnonzero(tr.concepts[:, j] <= 0)
    return tr.X[on[:n]], tr.X[off[:n]]


def test_the_fitted_concept_fires_on_unseen_images_that_show_it(model, world):
    j = world.spurious_index
    pos, neg = _picked(world, j)
    edit = AddConcept.from_examples("water (picked)", pos, neg, {"blue jay": 1.0}, ids=["a", "b"],
                                     model=model)
    edit.apply(model)
    score = model.transform(world["test"].X)[:, -1]
    assert roc_auc(world["test"].concepts[:, j] > 0, score) > 0.8
    prov = model.concepts_.provenance[-1]
    assert prov.source == "cav" and prov.detail["n_positive"] == 12 and prov.detail["ids"] == ["a", "b"]
    assert "held-out accuracy" in prov.summary()


def test_preview_matches_the_committed_model_and_the_edit_round_trips(model, world):
    pos, neg = _picked(world, world.spurious_index)
    edit = AddConcept.from_examples("water (picked)", pos, neg, {"blue jay": 3.0}, model=model)
    assert Edit.from_dict(edit.to_dict()) == edit  # logged in history.json and replayed bit for bit
    sets = {s: EvalSet.from_model(model, world[s].X, world[s].y, s, class_names=world.class_names)
            for s in ("test", "shifted")}
    effect = preview(model, edit, sets)
    edit.apply(model)
    for s, es in sets.items():
        after = model.decision_function(world[s].X).argmax(1)
        acc = float((after == es.y).mean())
        assert effect.value(s) == pytest.approx(acc)


def test_too_few_examples_get_one_clear_message(world):
    pos, neg = _picked(world, 0, n=1)
    with pytest.raises(DataError, match="at least 2 positive and 2 negative"):
        AddConcept.from_examples("x", pos, neg, {"blue jay": 1.0})
