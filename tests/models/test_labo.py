"""LaBo recovers the planted class-concept structure through its softmax association matrix."""

import numpy as np
import pytest

from cbm.io import load_model, save_model
from cbm.models.labo import LaBo, class_prior


@pytest.fixture(scope="module")
def fitted(world):
    tr, va = world["train"], world["val"]
    return LaBo(concepts=world.bank, device="cpu").fit(tr.X, tr.y, X_val=va.X, y_val=va.y)


def test_recovers_class_concepts_and_is_accurate(world, fitted):
    top3 = np.argsort(-fitted.coef_, axis=1)[:, :3]
    for k, g in enumerate(world.class_concepts):
        assert set(top3[k]) == set(np.flatnonzero(g)), world.class_names[k]
    assert fitted.score(world["test"].X, world["test"].y) >= 0.8


def test_head_is_scaled_softmax_of_association(fitted):
    A = fitted.association_
    W = np.exp(A - A.max(1, keepdims=True))
    W /= W.sum(1, keepdims=True)
    np.testing.assert_allclose(fitted.coef_, 100 * W, rtol=1e-5)
    assert (fitted.intercept_ == 0).all()


def test_prior_initialises_association(world):
    m = LaBo(concepts=world.bank, lr=1e-9, max_epochs=1, device="cpu").fit(world["train"].X, world["train"].y)
    np.testing.assert_allclose(m.association_, (world.bank.prior > 0).astype(np.float32), atol=1e-6)


def test_prior_from_provenance_when_bank_has_no_prior(world):
    bank = world.bank.replace(prior=None, classes=None)
    P = class_prior(bank, np.asarray(world.class_names))
    np.testing.assert_array_equal(P > 0, world.class_concepts > 0)


def test_spurious_concept_gets_its_class_weight(world, fitted):
    col = fitted.coef_[:, world.spurious_index]
    assert col.argmax() == world.spurious_class


@pytest.mark.slow
def test_deterministic(world):
    kw = dict(concepts=world.bank, max_epochs=5, batch_size=64, device="cpu")
    a = LaBo(**kw).fit(world["train"].X, world["train"].y)
    b = LaBo(**kw).fit(world["train"].X, world["train"].y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_save_load_round_trip(tmp_path, world, fitted):
    save_model(fitted, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    X = world["shifted"].X
    np.testing.assert_allclose(loaded.decision_function(X), fitted.decision_function(X), rtol=1e-5)
    np.testing.assert_array_equal(loaded.association_, fitted.association_)


def test_adds_a_concept_given_as_vector(world, fitted):
    m = LaBo(concepts=world.bank, max_epochs=5, device="cpu").fit(world["train"].X, world["train"].y)
    m.add_concept(world.bank.subset([0]).rename({world.bank.names[0]: "copy"}), np.ones((5, 1)))
    A = m.transform(world["test"].X)
    np.testing.assert_allclose(A[:, -1], A[:, 0], rtol=1e-5)


def test_errors_are_clear(world):
    X, y = world["train"].X, world["train"].y
    with pytest.raises(ValueError, match="'lr' parameter of LaBo"):
        LaBo(concepts=world.bank, lr=-1).fit(X, y)
    with pytest.raises(ValueError, match="ConceptBank with concept vectors"):
        LaBo(concepts=world.bank.with_vectors(None)).fit(X, y)
    with pytest.raises(ValueError, match="same encoder"):
        LaBo(concepts=world.bank).fit(X[:, :10], y)
    with pytest.raises(ValueError, match="y_val has labels not seen"):
        LaBo(concepts=world.bank).fit(X, y, X_val=X[:3], y_val=[0, 1, 99])


# -- released LaBo's optional terms (models/asso_opt/asso_opt.py) -------------------------------
def _released_l1(A):
    """The released sparsity term: the largest L1 norm of a row of the raw association logits."""
    return np.abs(A).sum(1).max()


def _released_diversity(S, A):
    """The released diversity term: minus the batch variance (unbiased) of s W^T, mean over classes."""
    W = np.exp(A - A.max(1, keepdims=True))
    W /= W.sum(1, keepdims=True)
    return -(S @ W.T).var(0, ddof=1).mean()


def test_penalties_are_the_released_formulas(world):
    import torch

    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, len(world.bank))).astype(np.float32)
    S = rng.standard_normal((32, len(world.bank))).astype(np.float32)
    m = LaBo(concepts=world.bank, l1=0.3, diversity=2.0)
    At = torch.as_tensor(A)
    got = float(m._penalty(At, torch.as_tensor(S) @ torch.softmax(At, 1).T))
    want = 0.3 * _released_l1(A) + 2.0 * _released_diversity(S, A)
    assert got == pytest.approx(want, rel=1e-5)


def test_l1_term_shrinks_the_association_and_diversity_spreads_class_scores(world):
    """Both terms act on training (the former l1 on softmax(A) was a constant 1/M with no gradient)."""
    tr = world["train"]
    kw = dict(concepts=world.bank, max_epochs=30, device="cpu")
    plain = LaBo(**kw).fit(tr.X, tr.y)
    sparse = LaBo(l1=0.05, **kw).fit(tr.X, tr.y)
    assert _released_l1(sparse.association_) < _released_l1(plain.association_) - 0.1
    diverse = LaBo(diversity=50.0, **kw).fit(tr.X, tr.y)
    S = plain.transform(tr.X)
    assert _released_diversity(S, diverse.association_) < _released_diversity(S, plain.association_)


# -- class identity: priors are matched to labels by name ---------------------------------------
@pytest.mark.parametrize("relabel", ["names", "offset integers"])
def test_labels_that_are_not_0_to_k_minus_1_match_the_prior_by_name(world, relabel):
    tr, te = world["train"], world["test"]
    names = np.asarray(world.class_names) if relabel == "names" else np.arange(10, 15)
    bank = world.bank.replace(classes=[str(c) for c in names])
    kw = dict(concepts=bank, max_epochs=20, device="cpu")
    reference = LaBo(**{**kw, "concepts": world.bank}).fit(tr.X, tr.y)
    relabelled = LaBo(**kw).fit(tr.X, names[tr.y])
    order = np.argsort(names)  # classes_ are sorted labels
    np.testing.assert_allclose(relabelled.coef_, reference.coef_[order], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(relabelled.predict(te.X), names[reference.predict(te.X)])


def test_a_prior_that_names_other_classes_is_refused_with_both_sides(world):
    tr = world["train"]
    with pytest.raises(ValueError, match=r"names the classes \[.*\] but y has labels \[.*12"):
        LaBo(concepts=world.bank, max_epochs=1).fit(tr.X, tr.y + 10)
