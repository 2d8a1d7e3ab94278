"""The add-a-concept contract, checked once for every registered method: a concept fitted from
examples with ``AddConcept.from_examples(..., model=model)`` fires on unseen images that show it and
not on the others, in the model's own activation scale; methods whose concept layer is learned
refuse with the reason."""

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.edits import AddConcept
from cbm.exceptions import EditError
from cbm.models import get_model_class, list_methods

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"max_epochs": 30, "patience": 5, "proj_steps": 50, "max_iter": 300, "device": "cpu"}


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=600, dim=32, random_state=0)


def _fitted(method: str, world):
    cls = get_model_class(method)
    names = cls().get_params(deep=False)
    params = {k: v for k, v in FAST.items() if k in names}
    if "concepts" in names:
        params["concepts"] = world.bank
    fit_params = {"class_embeddings": world.class_embeddings} if method == "cms" else {}
    labels = np.asarray(world.class_names)[world["train"].y]
    return cls(**params).fit(world["train"].X, labels, **fit_params)


def _examples(world, j: int, n: int = 40):
    tr = world["train"]
    on, off = np.flatnonzero(tr.concepts[:, j] > 0), np.flatnonzero(tr.concepts[:, j] <= 0)
    return tr.X[on[:n]], tr.X[off[:n]]


def _boundary(model) -> float:
    """Where an activation means "present": 0.5 for probabilities, else the signed distance 0."""
    return 0.5 if model.activation_range == (0.0, 1.0) else 0.0


@pytest.mark.parametrize("method", [m for m in list_methods() if get_model_class(m).vector_space])
def test_an_added_concept_separates_a_planted_direction(method, world):
    model = _fitted(method, world)
    j = world.spurious_index
    pos, neg = _examples(world, j)
    edit = AddConcept.from_examples("planted", pos, neg, {world.class_names[0]: 1.0}, model=model)
    edit.apply(model)
    fires = model.transform(world["test"].X)[:, -1] > _boundary(model)
    shows = world["test"].concepts[:, j] > 0
    assert fires[shows].mean() >= 0.8 and fires[~shows].mean() <= 0.2, (fires[shows].mean(), fires[~shows].mean())


@pytest.mark.parametrize("method", [m for m in list_methods() if not get_model_class(m).vector_space])
def test_a_learned_concept_layer_refuses_with_the_reason(method, world):
    model = get_model_class(method)()
    pos, neg = _examples(world, world.spurious_index)
    with pytest.raises(EditError, match="concept layer is learned"):
        AddConcept.from_examples("planted", pos, neg, [1.0, 0.0, 0.0], model=model)


def test_a_concept_fitted_on_raw_embeddings_is_refused_where_the_model_reads_unit_embeddings(world):
    model = _fitted("knobo", world)
    pos, neg = _examples(world, world.spurious_index)
    edit = AddConcept.from_examples("planted", pos, neg, {world.class_names[0]: 1.0})
    with pytest.raises(EditError, match="model=model"):
        edit.apply(model)
