"""Sparse-CBM: four bottleneck objectives on cached concept scores."""

import numpy as np
import pytest
import torch

import cbm.models.sparse_cbm as sparse_module
from cbm.io import load_model, save_model
from cbm.models.sparse_cbm import SparseCBM


@pytest.fixture(scope="module")
def gumbel(world):
    tr, va = world["train"], world["val"]
    return SparseCBM(concepts=world.bank, max_epochs=60, device="cpu").fit(tr.X, tr.y, X_val=va.X, y_val=va.y)


def _shifted_accuracy(model, world, coef):
    A = model.transform(world["shifted"].X)
    return np.mean((A @ coef.T).argmax(1) == world["shifted"].y)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["contrastive", "l1", "cos3"])
def test_each_objective_trains_an_accurate_head(world, objective):
    tr = world["train"]
    m = SparseCBM(concepts=world.bank, objective=objective, max_epochs=25, device="cpu").fit(tr.X, tr.y)
    assert len(m.history_) == 25 and np.isfinite([h["cbl"] for h in m.history_]).all()
    assert m.score(world["test"].X, world["test"].y) >= 0.75


@pytest.mark.slow
def test_gumbel_recovers_class_concepts(world, gumbel):
    assert gumbel.score(world["test"].X, world["test"].y) >= 0.8
    G = world.class_concepts
    for k in range(len(G)):
        own, other = gumbel.coef_[k][G[k] > 0], gumbel.coef_[k][(G[k] == 0)]
        assert own.mean() > other.mean(), world.class_names[k]
    top1 = gumbel.coef_[:, :-1].argmax(1)
    assert np.mean([G[k, j] for k, j in enumerate(top1)]) >= 0.8


@pytest.mark.slow
def test_puts_weight_on_spurious_concept_and_pruning_it_helps_after_shift(world, gumbel):
    j, k = world.spurious_index, world.spurious_class
    assert gumbel.coef_[:, j].argmax() == k and gumbel.coef_[k, j] > 0
    pruned = gumbel.coef_.copy()
    pruned[k, j] = 0.0
    assert _shifted_accuracy(gumbel, world, pruned) > _shifted_accuracy(gumbel, world, gumbel.coef_)


@pytest.mark.slow
def test_transform_is_bottleneck_of_scaled_cosines(world, gumbel):
    X = world["test"].X[:7]
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    V = world.bank.vectors / np.linalg.norm(world.bank.vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(gumbel.transform(X), (100 * Xn @ V.T) @ gumbel.cbl_weight_.T, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_concept_text_embeddings_are_scored_once_per_split(world, monkeypatch):
    calls = []
    real = sparse_module.concept_scores
    monkeypatch.setattr(sparse_module, "concept_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    tr, va = world["train"], world["val"]
    SparseCBM(concepts=world.bank, objective="l1", max_epochs=5, batch_size=16, device="cpu").fit(
        tr.X, tr.y, X_val=va.X, y_val=va.y)
    assert len(calls) == 2  # train + val, not one per batch


def test_random_cbl_init_is_the_released_variant(world):
    tr = world["train"]
    m = SparseCBM(concepts=world.bank, cbl_init="random", objective="l1", max_epochs=2, device="cpu").fit(tr.X, tr.y)
    assert not np.allclose(m.cbl_weight_, np.eye(len(world.bank)), atol=0.1)


@pytest.mark.slow
def test_save_load_round_trip(tmp_path, world, gumbel):
    save_model(gumbel, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    X = world["shifted"].X
    np.testing.assert_allclose(loaded.decision_function(X), gumbel.decision_function(X), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_deterministic_with_seed(world):
    tr = world["train"]
    kw = dict(concepts=world.bank, max_epochs=3, device="cpu", random_state=3)
    torch.manual_seed(123)
    a = SparseCBM(**kw).fit(tr.X, tr.y)
    b = SparseCBM(**kw).fit(tr.X, tr.y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_bad_objective_message(world):
    with pytest.raises(ValueError, match="'objective' parameter of SparseCBM must be a str among"):
        SparseCBM(concepts=world.bank, objective="hinge").fit(world["train"].X, world["train"].y)
