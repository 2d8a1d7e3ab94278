"""The estimator contract, checked once for every registered method (like scikit-learn's
``test_common``): clone and get/set_params keep parameter values, invalid parameters are rejected,
fit returns self, output shapes, and a save/load round trip through a model directory that predicts
exactly the same; then scikit-learn's contract as a user meets it (binary roc_auc cross-validation,
input and target validation, keyword-only parameters, random_state semantics, no global RNG side
effects). scikit-learn's own check suite runs in test_estimator_checks."""


import numpy as np
import pytest
import torch
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


# -- the scikit-learn contract, per method ------------------------------------------------------
@pytest.fixture(scope="module")
def binary_world():
    return make_concept_world(n_classes=2, n_concepts=6, n_samples=200, concepts_per_class=2,
                              dim=16, random_state=1)


def _trained_longer(model):
    """Enough training that the stochastic methods learn (the FAST settings only check plumbing)."""
    if "max_epochs" in model.get_params():
        model.set_params(max_epochs=30)  # 3 epochs leave Sparse-CBM's Gumbel bottleneck untrained
    if "proj_steps" in model.get_params():
        model.set_params(proj_steps=200, proj_lr=1e-2)  # LF-CBM's interpretability cut-off needs it
    return model


def _make_binary(method, world):
    model = _trained_longer(_make(method, world))
    if method == "cms":
        model.set_params(class_embeddings=world.class_embeddings)
    return model


@pytest.mark.parametrize("method", list_methods())
def test_constructor_arguments_are_keyword_only(method, world):
    cls = get_model_class(method)
    first = next(iter(cls().get_params(deep=False)))
    with pytest.raises(TypeError, match="positional"):
        cls(world.bank if first == "concepts" else 1.0)


@pytest.mark.parametrize("method", list_methods())
def test_unfitted_models_raise_sklearns_not_fitted_error(method, world):
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    model = _make(method, world)
    for call in (model.predict, model.transform, model.decision_function, model.predict_proba):
        with pytest.raises(SklearnNotFittedError):
            call(world["test"].X)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(model)


@pytest.mark.parametrize("method", list_methods())
def test_binary_roc_auc_cross_validation(method, binary_world):
    """decision_function is (n,) on two classes, so roc_auc scoring works as for any sklearn classifier."""
    from sklearn.model_selection import cross_val_score

    tr = binary_world["train"]
    model = _make_binary(method, binary_world)
    fitted = clone(model).fit(tr.X, tr.y)
    d = fitted.decision_function(binary_world["test"].X)
    assert d.shape == (len(binary_world["test"].y),)
    np.testing.assert_array_equal(fitted.classes_[(d > 0).astype(int)], fitted.predict(binary_world["test"].X))
    scores = cross_val_score(model, tr.X, tr.y, cv=3, scoring="roc_auc", error_score="raise")
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    assert scores.mean() > 0.7, scores


@pytest.mark.parametrize("method", list_methods())
def test_transformer_api_names_columns_by_concept(method, world):
    pd = pytest.importorskip("pandas")
    tr, te = world["train"], world["test"]
    model = _make(method, world)
    A = clone(model).fit_transform(tr.X, tr.y, **_fit_params(method, world))
    model.fit(tr.X, tr.y, **_fit_params(method, world))
    np.testing.assert_allclose(A, model.transform(tr.X), rtol=1e-6, atol=1e-6)
    names = model.get_feature_names_out()
    assert list(names) == model.concept_names_ and names.dtype == object
    frame = model.set_output(transform="pandas").transform(te.X)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == model.concept_names_
    assert model.predict(te.X).shape == (len(te.y),)  # prediction is unaffected by the output container


@pytest.mark.parametrize("method", list_methods())
def test_predict_validates_its_input(method, world):
    import scipy.sparse as sp

    tr, X = world["train"], world["test"].X[:5]
    model = _make(method, world).fit(tr.X, tr.y, **_fit_params(method, world))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.transform(bad)
    with pytest.raises(ValueError, match="Complex data not supported"):
        model.predict(X.astype(np.complex64))
    with pytest.raises(TypeError, match="dense data is required"):
        model.predict(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="0 feature"):
        model.predict(X[:, :0])
    with pytest.raises(ValueError, match=f"X has 5 features, but .* is expecting {X.shape[1]} features"):
        model.predict(X[:, :5])


@pytest.mark.parametrize("method", list_methods())
def test_fit_validates_its_targets(method, world):
    tr = world["train"]
    model = _make(method, world)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        model.fit(tr.X, tr.y + 0.5)
    with pytest.raises(ValueError, match="requires y to be passed"):
        model.fit(tr.X, None)
    onehot = np.eye(3)[tr.y]
    with pytest.raises(ValueError, match=r"one class per sample, but y has shape \(\d+, 3\) \(multi-label"):
        model.fit(tr.X, onehot)


@pytest.mark.parametrize("method", list_methods())
def test_fit_leaves_global_random_generators_alone(method, world):
    tr = world["train"]
    np.random.seed(123)
    torch.manual_seed(123)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    _make(method, world).fit(tr.X, tr.y, **_fit_params(method, world))
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("method", list_methods())
def test_random_state_follows_sklearn(method, world):
    """An int is reproducible, a RandomState instance works, and the same int gives the same model
    whatever the global generators' state."""
    tr, te = world["train"], world["test"]
    fp = _fit_params(method, world)
    a = _make(method, world).fit(tr.X, tr.y, **fp)
    np.random.seed(7)
    torch.manual_seed(7)
    b = _make(method, world).fit(tr.X, tr.y, **fp)
    np.testing.assert_array_equal(a.decision_function(te.X), b.decision_function(te.X))
    c = _make(method, world).set_params(random_state=np.random.RandomState(3)).fit(tr.X, tr.y, **fp)
    assert c.predict(te.X).shape == (len(te.y),)


@pytest.mark.parametrize("method", ["sparse-cbm", "lf-cbm", "labo"])
def test_random_state_none_is_not_seeded(method, world):
    tr, te = world["train"], world["test"]
    a = _trained_longer(_make(method, world)).set_params(random_state=None)
    if method == "labo":
        a.set_params(batch_size=16)  # full-batch LaBo has no randomness
    b = clone(a)
    za = a.fit(tr.X, tr.y).decision_function(te.X)
    zb = b.fit(tr.X, tr.y).decision_function(te.X)
    assert not np.array_equal(za, zb)


@pytest.mark.parametrize("method", list_methods())
def test_n_iter_is_set_by_iterating_methods(method, world):
    tr = world["train"]
    model = _make(method, world).fit(tr.X, tr.y, **_fit_params(method, world))
    if method == "cms":
        assert not hasattr(model, "n_iter_")  # training-free: nothing iterates
    else:
        assert isinstance(model.n_iter_, int) and model.n_iter_ >= 1


@pytest.mark.parametrize("method", [m for m in list_methods() if m != "linear-probe"])
def test_an_empty_concept_bank_is_refused_at_fit(method, world):
    tr = world["train"]
    empty = world.bank.subset([])
    model = _make(method, world).set_params(concepts=empty)
    with pytest.raises(ValueError, match=r"empty concept bank \(0 concepts\)"):
        model.fit(tr.X, tr.y, **_fit_params(method, world))
