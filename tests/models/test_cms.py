"""Concept Matrix Search: training-free, written as a linear head on normalised concept profiles."""

import numpy as np
import pytest

from cbm.io import load_model, save_model
from cbm.models.cms import ConceptMatrixSearch


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def _rownorm(M, how="l1"):
    """Released CMS divides each row by its signed sum ("sum"); the default divides by sum |.| ("l1")."""
    total = np.abs(M).sum(1, keepdims=True) if how == "l1" else M.sum(1, keepdims=True)
    return M / (total + 1e-8)


@pytest.mark.parametrize("normalize", ["l1", "sum"])
def test_matches_the_concept_matrix_search_rule(world, normalize):
    X = world["test"].X
    m = ConceptMatrixSearch(concepts=world.bank, normalize=normalize, device="cpu").fit(
        world["train"].X, world["train"].y, class_embeddings=world.class_embeddings)
    V = _rownorm(_cos(X, world.bank.vectors), normalize)
    T = _rownorm(_cos(world.class_embeddings, world.bank.vectors), normalize)
    np.testing.assert_array_equal(m.predict(X), _cos(V, T).argmax(1))
    assert m.score(X, world["test"].y) >= 0.7


def test_default_normalisation_never_flips_a_row_with_a_negative_sum(world):
    """A row whose similarities sum below zero is flipped by the released rule, never by the default."""
    X = world["test"].X
    S = _cos(X, world.bank.vectors)
    negative = S.sum(1) < 0
    assert negative.any()  # the synthetic world has such images
    kw = dict(concepts=world.bank, class_embeddings=world.class_embeddings, variant="max", device="cpu")
    robust = ConceptMatrixSearch(**kw).fit(world["train"].X, world["train"].y)
    released = ConceptMatrixSearch(normalize="sum", **kw).fit(world["train"].X, world["train"].y)
    top = S.argmax(1)  # max-score picks the most similar concept ...
    np.testing.assert_array_equal(robust.transform(X).argmax(1), top)
    # ... except under the released rule, which picks the least similar one on the flipped rows
    np.testing.assert_array_equal(released.transform(X)[negative].argmax(1), S[negative].argmin(1))
    assert robust.score(X, world["test"].y) > released.score(X, world["test"].y)


def test_class_embeddings_follow_class_names_not_positions(world):
    """String labels sort differently from the bank's class order; embeddings are matched by name."""
    names = np.asarray(world.class_names)
    tr, te = world["train"], world["test"]
    assert list(np.unique(names)) != list(world.bank.classes)  # positional matching would misalign
    by_index = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings).fit(tr.X, tr.y)
    by_name = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings).fit(
        tr.X, names[tr.y])
    np.testing.assert_array_equal(by_name.predict(te.X), names[by_index.predict(te.X)])
    assert by_name.score(te.X, names[te.y]) >= 0.7
    as_mapping = dict(zip(world.bank.classes, world.class_embeddings, strict=True))
    m = ConceptMatrixSearch(concepts=world.bank, class_embeddings=as_mapping).fit(tr.X, names[tr.y])
    np.testing.assert_array_equal(m.predict(te.X), by_name.predict(te.X))


def test_class_embeddings_that_name_other_classes_are_refused(world):
    tr = world["train"]
    with pytest.raises(ValueError, match="none of them"):
        ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings).fit(
            tr.X, np.asarray(["a", "b", "c", "d", "e"])[tr.y])


def test_class_concept_matrix_recovers_structure(world):
    m = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings,
                            device="cpu").fit(world["train"].X, world["train"].y)
    for k, g in enumerate(world.class_concepts):
        assert set(np.argsort(-m.coef_[k])[:3]) == set(np.flatnonzero(g))


def test_max_score_variant(world):
    X = world["test"].X
    m = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings,
                            variant="max", device="cpu").fit(world["train"].X, world["train"].y)
    V = _rownorm(_cos(X, world.bank.vectors))
    T = _rownorm(_cos(world.class_embeddings, world.bank.vectors))
    np.testing.assert_array_equal(m.predict(X), T[:, V.argmax(1)].argmax(0))
    assert (m.transform(X).sum(1) == 1).all()
    assert m.score(X, world["test"].y) > 1 / 5 + 0.2


def test_labels_do_not_change_the_model(world):
    tr = world["train"]
    a = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings).fit(tr.X, tr.y)
    b = ConceptMatrixSearch(concepts=world.bank, class_embeddings=world.class_embeddings).fit(
        tr.X[:50], np.arange(50) % 5)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_save_load_round_trip(tmp_path, world):
    tr = world["train"]
    m = ConceptMatrixSearch(concepts=world.bank, device="cpu").fit(tr.X, tr.y, class_embeddings=world.class_embeddings)
    save_model(m, tmp_path / "m")
    X = world["shifted"].X
    np.testing.assert_allclose(load_model(tmp_path / "m").decision_function(X), m.decision_function(X), rtol=1e-5)


def test_missing_or_misshaped_class_embeddings(world):
    tr = world["train"]
    with pytest.raises(ValueError, match="needs class text embeddings"):
        ConceptMatrixSearch(concepts=world.bank).fit(tr.X, tr.y)
    with pytest.raises(ValueError, match="class_embeddings must have shape"):
        ConceptMatrixSearch(concepts=world.bank).fit(tr.X, tr.y, class_embeddings=np.ones((2, 3)))
