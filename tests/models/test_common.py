"""The estimator contract, checked once for every registered method (like scikit-learn's
``test_common``): clone and get/set_params keep parameter values, invalid parameters are rejected,
fit returns self, output shapes, and a save/load round trip through a model directory that predicts
exactly the same."""

import numpy as np
import pytest
from sklearn.base import clone

from cbm.bank import ConceptBank
from cbm.data import make_concept_world
from cbm.exceptions import NotFittedError
from cbm.io import load_model, save_model
from cbm.models import get_model_class, list_methods

#: keep every method tiny: applied only when the method has the parameter
FAST = {"max_epochs": 3, "patience": 2, "proj_steps": 20, "max_iter": 200, "device": "cpu"}


#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=8, n_samples=150, concepts_per_class=2,
                              dim=16, random_state=0)


def _make(method, world):
    cls = get_model_class(method)
    names = cls().get_params(deep=False)
    params = {k: v for k, v in FAST.items() if k in names}
    if "concepts" in names:
        params["concepts"] = world.bank
    return cls(**params)


def _fit_params(method, world):
    extra = {"cms": {"class_embeddings": world.class_embeddings}}
    return extra.get(method, {})


def _same(a, b) -> bool:
    """Equal parameter values: banks by names, texts and vectors; arrays elementwise; others by ==."""
    if isinstance(a, ConceptBank) or isinstance(b, ConceptBank):
        return (type(a) is type(b) and a.names == b.names and list(a.texts) == list(b.texts)
                and (a.vectors is None) == (b.vectors is None)
                and (a.vectors is None or np.array_equal(a.vectors, b.vectors)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("method", list_methods())
def test_clone_keeps_every_parameter_value(method, world):
    model = _make(method, world)
    twin = clone(model)
    assert twin is not model
    params, twin_params = model.get_params(deep=False), twin.get_params(deep=False)
    assert twin_params.keys() == params.keys()
    differ = [k for k in params if not _same(params[k], twin_params[k])]
    assert not differ, differ
    with pytest.raises(NotFittedError):
        model.transform(world["test"].X)


@pytest.mark.parametrize("method", list_methods())
def test_set_params_sets_values_that_get_params_and_clone_return(method, world):
    model = _make(method, world)
    assert model.set_params(random_state=7) is model
    assert model.get_params()["random_state"] == 7
    assert clone(model).get_params()["random_state"] == 7
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_param'"):
        model.set_params(no_such_param=1)


@pytest.mark.parametrize("method", list_methods())
def test_fit_rejects_an_invalid_value_of_every_validated_parameter(method, world):
    tr = world["train"]
    constrained = [k for k, c in type(_make(method, world))._parameter_constraints.items()
                   if "no_validation" not in c and object not in c]
    assert constrained, f"{method} validates no parameter"
    for name in constrained:
        model = _make(method, world).set_params(**{name: object()})
        with pytest.raises(ValueError, match=f"The '{name}' parameter of {type(model).__name__} must be"):
            model.fit(tr.X, tr.y, **_fit_params(method, world))


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
