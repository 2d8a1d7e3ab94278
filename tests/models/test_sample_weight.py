"""``fit(X, y, sample_weight=)`` for every registered method (scikit-learn's convention).

Deterministic full-batch solvers are checked against the data they stand for: a zero weight equals
dropping the sample and an integer weight equals repeating it (to the solver's tolerance). Methods
with a random hold-out split or minibatches are checked for the direction: weighting one class up
raises its predicted probability.
"""

import numpy as np
import pytest
import torch
from sklearn.utils.validation import has_fit_parameter

from cbm.data import make_concept_world
from cbm.models import get_model_class, list_methods
from cbm.models.knobo import balanced_weights

pytestmark = pytest.mark.usefixtures("one_thread")

#: deterministic full-batch fits, solved tightly enough that float32 rounding is what is left
EXACT = {
    "pcbm": {"tol": 1e-7, "max_iter": 20000},
    "dense-head": {"tol": 1e-7, "max_iter": 20000},
    "pcbm-h": {"tol": 1e-7, "max_iter": 20000, "residual_solver": "ridge"},
    "linear-probe": {},
    "labo": {"max_epochs": 100},
    "cms": {},
}
#: a random hold-out split (KnoBo's grounding, LF-CBM's cut-offs), minibatches or Gumbel noise
STOCHASTIC = {
    "knobo": {"threshold": 0.0, "max_epochs": 100},
    "sparse-cbm": {"max_epochs": 20},
    "lf-cbm": {"clip_cutoff": -1.0, "interpretability_cutoff": -1.0, "proj_steps": 20},
    "pcbm-h": {},
    "cct": {"max_epochs": 10},
}


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=8, n_samples=150, concepts_per_class=2,
                              dim=16, random_state=0)


def _make(method, world, params):
    cls = get_model_class(method)
    return cls(concepts=world.bank, device="cpu", **params) if "concepts" in cls().get_params() \
        else cls(device="cpu", **params)


def _fit(method, world, params, X, y, **kw):
    extra = {"class_embeddings": world.class_embeddings} if method == "cms" else {}
    return _make(method, world, params).fit(X, y, **extra, **kw)


def test_every_method_takes_sample_weight_as_scikit_learn_sees_it():
    assert set(EXACT) | set(STOCHASTIC) == set(list_methods())
    for method in list_methods():
        assert has_fit_parameter(get_model_class(method)(), "sample_weight"), method
        assert "sample_weight" not in get_model_class(method).fit_param_names()


@pytest.mark.parametrize("method", sorted(EXACT))
def test_zero_weight_equals_dropping_and_integer_weight_equals_repeating(method, world):
    tr, te = world["train"], world["test"]
    sw = np.random.default_rng(0).integers(0, 4, len(tr.X)).astype(float)
    assert (sw == 0).sum() > 10 and (sw > 1).sum() > 10
    weighted = _fit(method, world, EXACT[method], tr.X, tr.y, sample_weight=sw).predict_proba(te.X)
    keep = sw > 0
    dropped = _fit(method, world, EXACT[method], tr.X[keep], tr.y[keep],
                   sample_weight=sw[keep]).predict_proba(te.X)
    reps = sw.astype(int)
    repeated = _fit(method, world, EXACT[method], tr.X.repeat(reps, 0), tr.y.repeat(reps)).predict_proba(te.X)
    plain = _fit(method, world, EXACT[method], tr.X, tr.y).predict_proba(te.X)
    np.testing.assert_allclose(weighted, dropped, atol=1e-4)
    np.testing.assert_allclose(weighted, repeated, atol=1e-4)
    if method != "cms":  # CMS learns nothing from the labels, so weights change nothing
        assert np.abs(weighted - plain).max() > 1e-3


def test_unit_weights_equal_no_weights(world):
    tr, te = world["train"], world["test"]
    a = _fit("pcbm", world, EXACT["pcbm"], tr.X, tr.y).predict_proba(te.X)
    b = _fit("pcbm", world, EXACT["pcbm"], tr.X, tr.y, sample_weight=np.full(len(tr.X), 3.0)).predict_proba(te.X)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("method", sorted(STOCHASTIC))
def test_weighting_a_class_up_raises_its_predicted_probability(method, world):
    tr, te = world["train"], world["test"]
    first = tr.y == tr.y.min()
    plain = _fit(method, world, STOCHASTIC[method], tr.X, tr.y).predict_proba(te.X)[:, 0].mean()
    up = _fit(method, world, STOCHASTIC[method], tr.X, tr.y,
              sample_weight=np.where(first, 20.0, 1.0)).predict_proba(te.X)[:, 0].mean()
    assert up > plain + 0.05


def test_knobo_grounding_weights_treat_zero_as_dropped_and_integers_as_repeats():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(40, 5, generator=g) > 0.5
    train = torch.rand(40, 5, generator=g) > 0.2
    sw = torch.randint(0, 4, (40,), generator=g).float()
    keep = sw > 0
    weighted = balanced_weights(pos, train, None, sw)
    torch.testing.assert_close(weighted[keep], balanced_weights(pos[keep], train[keep], None, sw[keep]))
    assert bool((weighted[~keep] == 0).all())
    reps = sw.long()
    repeated = balanced_weights(pos.repeat_interleave(reps, 0), train.repeat_interleave(reps, 0), None)
    per_row = torch.zeros_like(weighted).index_add_(0, torch.arange(40).repeat_interleave(reps), repeated)
    torch.testing.assert_close(weighted, per_row)
    assert not torch.allclose(weighted, balanced_weights(pos, train, None))


def test_sample_weight_is_validated(world):
    tr = world["train"]
    model = _make("pcbm", world, {})
    with pytest.raises(ValueError, match="at least one non-zero"):
        model.fit(tr.X, tr.y, sample_weight=np.zeros(len(tr.X)))
    with pytest.raises(ValueError, match="Negative values"):
        model.fit(tr.X, tr.y, sample_weight=-np.ones(len(tr.X)))
    with pytest.raises(ValueError, match=r"\(90,\)"):
        model.fit(tr.X, tr.y, sample_weight=np.ones(len(tr.X) + 1))
    with pytest.raises(ValueError, match="at least 2 classes with a non-zero sample_weight"):
        model.fit(tr.X, tr.y, sample_weight=(tr.y == tr.y.min()).astype(float))


@pytest.mark.parametrize("method", ["knobo", "labo", "pcbm", "cms"])
def test_an_unknown_fit_argument_names_the_public_fit_and_the_closest_ones(method, world):
    tr = world["train"]
    with pytest.raises(TypeError, match=r"\.fit\(\) got an unexpected keyword argument 'sample_weights'\. "
                                        r"Did you mean 'sample_weight'") as err:
        _make(method, world, {}).fit(tr.X, tr.y, sample_weights=np.ones(len(tr.X)))
    assert "_fit" not in str(err.value)
