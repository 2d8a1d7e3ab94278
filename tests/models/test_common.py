"""The estimator contract, checked once for every registered method (like scikit-learn's
``test_common``): clone and get/set_params, fit returns self, output shapes, and a save/load round
trip through a model directory that predicts exactly the same. Methods whose module does not exist
yet are skipped with the reason."""

import importlib

import numpy as np
import pytest
from sklearn.base import clone

from cbm.data import make_concept_world
from cbm.exceptions import NotFittedError
from cbm.io import load_model, save_model
from cbm.models import _REGISTRY, get_model_class, list_methods

#: keep every method tiny: applied only when the method has the parameter
FAST = {"max_epochs": 3, "patience": 2, "proj_steps": 20, "max_iter": 200, "device": "cpu"}


#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=8, n_samples=150, concepts_per_class=2,
                              dim=16, random_state=0)


def _model_class(method):
    module = _REGISTRY[method].split(":")[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        pytest.skip(f"{method}: {module} is not written yet ({e})")
    return get_model_class(method)


def _make(method, world):
    cls = _model_class(method)
    names = cls().get_params(deep=False)
    params = {k: v for k, v in FAST.items() if k in names}
    if "concepts" in names:
        params["concepts"] = world.bank
    return cls(**params)


def _fit_params(method, world):
    extra = {"cms": {"class_embeddings": world.class_embeddings}}
    return extra.get(method, {})


@pytest.mark.parametrize("method", list_methods())
def test_params_clone_and_set(method, world):
    model = _make(method, world)
    params = model.get_params(deep=False)
    twin = clone(model)
    assert twin is not model and twin.get_params(deep=False).keys() == params.keys()
    assert model.set_params(random_state=1) is model and model.get_params()["random_state"] == 1
    with pytest.raises(NotFittedError):
        model.transform(world["test"].X)


@pytest.mark.parametrize("method", list_methods())
def test_fit_outputs_and_save_load_round_trip(method, world, tmp_path):
    tr, te = world["train"], world["test"]
    model = _make(method, world)
    assert model.fit(tr.X, tr.y, **_fit_params(method, world)) is model
    n, K = len(te.y), len(model.classes_)
    A = model.transform(te.X)
    assert A.shape == (n, len(model.concept_names_)) == (n, model.coef_.shape[1])
    assert model.decision_function(te.X).shape == (n, K)
    proba = model.predict_proba(te.X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    pred = model.predict(te.X)
    assert pred.shape == (n,) and set(pred) <= set(model.classes_)
    assert 0.0 <= model.score(te.X, te.y) <= 1.0

    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.decision_function(te.X), model.decision_function(te.X),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(te.X), pred)
