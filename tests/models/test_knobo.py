"""KnoBo grounds one predictor per concept, keeps the reliable ones and fits a prior-regularised head."""

import numpy as np
import pytest

from cbm.io import load_model, save_model
from cbm.models.knobo import KnoBo


@pytest.fixture(scope="module")
def from_prior(world):
    tr, va = world["train"], world["val"]
    return KnoBo(concepts=world.bank, device="cpu").fit(tr.X, tr.y, X_val=va.X, y_val=va.y)


@pytest.fixture(scope="module")
def from_labels(world):
    tr = world["train"]
    return KnoBo(concepts=world.bank, device="cpu").fit(tr.X, tr.y, concept_labels=tr.concepts)


def _full_coef(model, n_concepts):
    C = np.zeros((model.coef_.shape[0], n_concepts))
    C[:, model.selected_] = model.coef_
    return C


@pytest.mark.slow
def test_prior_labels_ground_only_described_concepts(world, from_prior):
    described = (world.bank.prior > 0).any(0)
    assert np.isnan(from_prior.grounding_accuracy_[~described]).all()
    assert (from_prior.grounding_accuracy_[described] > 0.75).all()
    assert set(from_prior.selected_) == set(np.flatnonzero(described))


@pytest.mark.slow
def test_recovers_class_concepts_and_is_accurate(world, from_prior):
    C = _full_coef(from_prior, len(world.bank))
    for k, g in enumerate(world.class_concepts):
        assert set(np.argsort(-C[k])[:3]) == set(np.flatnonzero(g))
    assert from_prior.score(world["test"].X, world["test"].y) >= 0.85


@pytest.mark.slow
def test_concept_labels_ground_the_spurious_concept_and_head_uses_it(world, from_labels):
    j, k = world.spurious_index, world.spurious_class
    assert j in from_labels.selected_
    col = from_labels.coef_[:, list(from_labels.selected_).index(j)]
    assert col.argmax() == k and col[k] > 0


@pytest.mark.slow
def test_fitting_leaves_the_callers_bank_untouched(world, from_prior, from_labels):
    assert all("grounding_accuracy" not in p.detail for p in world.bank.provenance)


@pytest.mark.slow
def test_activations_are_probabilities_of_the_grounded_cavs(world, from_prior):
    X = world["test"].X[:5]
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = 1 / (1 + np.exp(-(Xn @ from_prior.grounding_W_.T + from_prior.grounding_b_)))
    np.testing.assert_allclose(from_prior.transform(X), expected, rtol=1e-5)
    bank = from_prior.base_concepts_
    assert bank.provenance[0].detail["grounding_accuracy"] == pytest.approx(
        from_prior.grounding_accuracy_[from_prior.selected_[0]])


@pytest.mark.slow
def test_threshold_and_max_concepts(world):
    tr = world["train"]
    m = KnoBo(concepts=world.bank, max_concepts=4, max_epochs=5, device="cpu").fit(tr.X, tr.y)
    assert len(m.concept_names_) == 4
    acc = m.grounding_accuracy_
    assert acc[m.selected_].min() >= np.nanmax(np.delete(acc, m.selected_))
    with pytest.raises(ValueError, match="No concept predictor reached threshold"):
        KnoBo(concepts=world.bank, threshold=1.0, device="cpu").fit(tr.X, tr.y)


@pytest.mark.slow
def test_prior_loss_pulls_weights_towards_prior(world):
    tr = world["train"]
    strong = KnoBo(concepts=world.bank, lam=20.0, max_epochs=100, device="cpu").fit(tr.X, tr.y)
    free = KnoBo(concepts=world.bank, lam=0.0, max_epochs=100, device="cpu").fit(tr.X, tr.y)
    P = world.bank.prior[:, strong.selected_]

    def gap(m):
        return np.abs(np.tanh(m.coef_) - P).mean()

    assert gap(strong) < gap(free)


@pytest.mark.slow
def test_add_concept_as_cav(world, from_prior):
    m = KnoBo(concepts=world.bank, max_epochs=5, device="cpu").fit(world["train"].X, world["train"].y)
    cav = m.base_concepts_.subset([0]).rename({m.concept_names_[0]: "copy"})
    m.add_concept(cav, np.zeros((5, 1)))
    A = m.transform(world["test"].X)
    np.testing.assert_allclose(A[:, -1], A[:, 0], rtol=1e-5)


@pytest.mark.slow
def test_save_load_round_trip(tmp_path, world, from_labels):
    save_model(from_labels, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    X = world["shifted"].X
    np.testing.assert_allclose(loaded.predict_proba(X), from_labels.predict_proba(X), rtol=1e-5)


def test_errors_are_clear(world):
    tr = world["train"]
    with pytest.raises(ValueError, match="concept_labels must have shape"):
        KnoBo(concepts=world.bank).fit(tr.X, tr.y, concept_labels=np.ones((3, 3)))
    with pytest.raises(ValueError, match="needs concept labels"):
        KnoBo(concepts=world.bank.replace(prior=None, classes=None)).fit(tr.X, tr.y)
    with pytest.raises(ValueError, match="'threshold' parameter of KnoBo"):
        KnoBo(concepts=world.bank, threshold=2).fit(tr.X, tr.y)


@pytest.mark.parametrize("relabel", ["names", "offset integers"])
def test_labels_that_are_not_0_to_k_minus_1_match_the_prior_by_name(world, relabel):
    tr, te = world["train"], world["test"]
    names = np.asarray(world.class_names) if relabel == "names" else np.arange(10, 10 + len(world.class_names))
    bank = world.bank.replace(classes=[str(c) for c in names])
    kw = dict(max_epochs=30, device="cpu")
    reference = KnoBo(concepts=world.bank, **kw).fit(tr.X, tr.y)
    relabelled = KnoBo(concepts=bank, **kw).fit(tr.X, names[tr.y])
    np.testing.assert_array_equal(relabelled.selected_, reference.selected_)
    np.testing.assert_array_equal(relabelled.predict(te.X), names[reference.predict(te.X)])

def test_balanced_weights_make_the_nuisance_independent_of_each_label():
    import torch

    from cbm.models.knobo import balanced_weights

    g = torch.Generator().manual_seed(0)
    pos = torch.rand(400, 2, generator=g) < 0.5
    nuisance = (torch.rand(400, generator=g) < torch.where(pos[:, 0], 0.9, 0.1)).long()  # confounded
    w = balanced_weights(pos, torch.ones_like(pos), nuisance[:, None].expand(-1, 2))
    for j in range(2):
        for lab in (True, False):
            m = pos[:, j] == lab
            rate = (w[m, j] * nuisance[m]).sum() / w[m, j].sum()
            assert abs(rate.item() - 0.5) < 1e-5
        assert abs(w[:, j].sum().item() - 1) < 1e-5


def test_balance_concept_grounds_the_artifact_across_classes(world):
    tr = world["train"]
    names = world.bank.names
    m = KnoBo(concepts=world.bank, device="cpu", balance_concept=names[world.spurious_index])
    m.fit(tr.X, tr.y, concept_labels=tr.concepts)
    assert m.balance_concept in m.concept_names_


def test_sparse_head_has_exact_zeros(world, from_labels):
    import copy

    tr, va = world["train"], world["val"]
    sparse = copy.deepcopy(from_labels).set_params(l1=0.5).refit(tr.X, tr.y, X_val=va.X, y_val=va.y)
    assert (sparse.coef_ == 0).sum() > (from_labels.coef_ == 0).sum()
    assert sparse.score(world["test"].X, world["test"].y) > 0.5


def test_eraser_is_applied_before_the_predictors_and_saved(world, from_labels, tmp_path):
    import copy

    m = copy.deepcopy(from_labels)
    d = m.n_features_in_
    u = np.zeros((d, 1), np.float32)
    u[0] = 1.0
    X = world["test"].X[:20]
    m.set_eraser(u, u.T, np.zeros(d, np.float32))
    X0 = X.copy()
    X0[:, 0] = 0
    np.testing.assert_allclose(m.transform(X), from_labels.transform(X0), atol=1e-6)
    save_model(m, tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").transform(X), m.transform(X), atol=1e-6)
    with pytest.raises(ValueError, match="eraser shapes"):
        m.set_eraser(u[:5], u.T, np.zeros(d, np.float32))


def test_auto_grounding_l2_takes_each_predictors_best_held_out_strength(world, tmp_path):
    from cbm.models.knobo import GROUNDING_L2_GRID

    tr = world["train"]
    fixed = KnoBo(concepts=world.bank, device="cpu", grounding_l2=GROUNDING_L2_GRID[0]).fit(
        tr.X, tr.y, concept_labels=tr.concepts)
    auto = KnoBo(concepts=world.bank, device="cpu", grounding_l2="auto").fit(tr.X, tr.y, concept_labels=tr.concepts)
    assert set(auto.grounding_l2_.tolist()) <= {np.float32(v) for v in GROUNDING_L2_GRID}
    assert len(auto.grounding_l2_) == len(auto.selected_)
    # the same held-out images score every strength, and the first one is fixed's: never worse
    labelled = np.isfinite(fixed.grounding_accuracy_)
    assert np.all(auto.grounding_accuracy_[labelled] >= fixed.grounding_accuracy_[labelled] - 1e-6)
    save_model(auto, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.grounding_l2_, auto.grounding_l2_)
    # re-grounding after an edit keeps each predictor's strength instead of searching again
    base_cols = [world.bank.index(n) for n in loaded.base_concepts_.names]
    loaded.refit(tr.X, tr.y, concept_labels=tr.concepts[:, base_cols])
    np.testing.assert_array_equal(loaded.grounding_l2_, auto.grounding_l2_)
    with pytest.raises(ValueError, match="'grounding_l2' parameter of KnoBo"):
        KnoBo(concepts=world.bank, grounding_l2="strong").fit(tr.X, tr.y)


def test_released_variant_takes_the_released_threshold_and_grounding_l2_and_trains(world):
    tr, te = world["train"], world["test"]
    released = KnoBo(concepts=world.bank, variant="released", device="cpu").fit(
        tr.X, tr.y, concept_labels=tr.concepts)
    assert released.threshold_ == 0.0
    np.testing.assert_array_equal(released.grounding_l2_, np.float32(2.5e-4))
    grounded = np.flatnonzero(np.isfinite(released.grounding_accuracy_))
    assert sorted(released.selected_) == sorted(grounded)   # threshold 0 keeps every grounded concept
    assert (released.predict(te.X) == te.y).mean() > 0.8
    assert released.get_params()["threshold"] is None and released.get_params()["grounding_l2"] is None


def test_project_variant_is_the_default_and_explicit_values_win_over_a_variant(world):
    tr = world["train"]
    project = KnoBo(concepts=world.bank, device="cpu", max_epochs=5).fit(tr.X, tr.y, concept_labels=tr.concepts)
    assert project.variant == "project" and project.threshold_ == 0.6
    np.testing.assert_array_equal(project.grounding_l2_, np.float32(1e-3))
    explicit = KnoBo(concepts=world.bank, variant="released", threshold=0.6, grounding_l2=1e-3, device="cpu",
                     max_epochs=5).fit(tr.X, tr.y, concept_labels=tr.concepts)
    assert explicit.threshold_ == 0.6
    np.testing.assert_array_equal(explicit.grounding_l2_, np.float32(1e-3))
    np.testing.assert_array_equal(explicit.selected_, project.selected_)
    with pytest.raises(ValueError, match="'variant' parameter of KnoBo must be a str among"):
        KnoBo(concepts=world.bank, variant="paper").fit(tr.X, tr.y)
