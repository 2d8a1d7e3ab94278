"""BaseConceptModel's public API that other modules build on: added concepts, scoring a concept given
as a vector without changing the model, the fit-time extras a method takes, and refusing to save an
unfitted model."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from cbm.data import make_concept_world
from cbm.exceptions import EditError
from cbm.io import save_model
from cbm.models import create_model, get_model_class, list_methods


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=6, n_samples=90, concepts_per_class=2, dim=16,
                              random_state=0)


@pytest.fixture
def pcbm(world):
    return create_model("pcbm", concepts=world.bank, max_iter=200).fit(world["train"].X, world["train"].y)


def test_score_concept_vectors_gives_the_column_add_concept_adds(pcbm, world):
    new = world.bank.subset([0]).rename({world.bank.names[0]: "copy"})
    X = world["test"].X
    scored = pcbm.score_concept_vectors(X, new.vectors, np.zeros(1))
    before = pcbm.transform(X)
    assert scored.shape == (len(X), 1)
    np.testing.assert_array_equal(pcbm.transform(X), before)  # the model is unchanged
    pcbm.add_concept(new, np.zeros((3, 1)))
    np.testing.assert_allclose(pcbm.transform(X)[:, -1], scored[:, 0], rtol=1e-6)


def test_added_concept_vectors_are_empty_after_fit_and_follow_edits(pcbm, world):
    vectors, intercepts = pcbm.added_concept_vectors
    assert vectors.shape == (0, 16) and intercepts.shape == (0,)
    new = world.bank.subset([1]).rename({world.bank.names[1]: "copy"})
    pcbm.add_concept(new, np.zeros((3, 1)))
    vectors, intercepts = pcbm.added_concept_vectors
    np.testing.assert_array_equal(vectors, new.vectors.astype(np.float32))
    pcbm.remove_concept(len(pcbm.concept_names_) - 1)
    assert len(pcbm.added_concept_vectors[0]) == 0


def test_a_learned_concept_layer_cannot_score_a_vector(world):
    model = create_model("linear-probe").fit(world["train"].X, world["train"].y)
    with pytest.raises(EditError, match="cannot score a concept given as a vector"):
        model.score_concept_vectors(world["test"].X, world.bank.vectors[:1], np.zeros(1))


@pytest.mark.parametrize("method", list_methods())
def test_fit_param_names_never_list_the_data_itself(method):
    names = get_model_class(method).fit_param_names()
    assert not names & {"self", "X", "y", "fit_params"}


def test_fit_param_names_name_each_methods_extras():
    assert get_model_class("pcbm").fit_param_names() == set()
    assert get_model_class("labo").fit_param_names() == {"X_val", "y_val"}
    assert get_model_class("cms").fit_param_names() == {"class_embeddings"}


def test_saving_an_unfitted_model_is_refused_before_anything_is_written(world, tmp_path):
    with pytest.raises(NotFittedError, match="PCBM is not fitted yet"):
        save_model(create_model("pcbm", concepts=world.bank), tmp_path / "m")
    assert not (tmp_path / "m").exists()
