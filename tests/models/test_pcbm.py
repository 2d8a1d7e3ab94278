"""PCBM and PCBM-h: projections as the formulas say, penalty scaling, sparse recovery, the hybrid
residual, and parameter validation."""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from cbm.bank import ConceptBank
from cbm.data import make_concept_world
from cbm.metrics import concept_recovery
from cbm.models.pcbm import PCBM, PCBMHybrid
from cbm.solvers import objective

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=4, n_concepts=13, n_samples=400, concepts_per_class=3,
                              noise=0.5, random_state=0)


@pytest.fixture
def cav_bank():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((3, 5)) * np.array([[0.5], [2.0], [3.0]])
    return ConceptBank(["a", "b", "c"], vectors=vectors, intercepts=[0.5, -1.0, 2.0])


def test_projections_follow_the_formulas(cav_bank):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((40, 5)).astype(np.float32), np.arange(40) % 2
    C, b = cav_bank.vectors, cav_bank.intercepts
    norms = np.linalg.norm(C, axis=1)
    paper = PCBM(concepts=cav_bank, projection="paper").fit(X, y).transform(X)
    code = PCBM(concepts=cav_bank, projection="code").fit(X, y).transform(X)
    np.testing.assert_allclose(paper, X @ C.T / norms**2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(code, (X @ C.T + b) / norms, rtol=1e-4, atol=1e-5)
    assert not np.allclose(paper, code)


@pytest.mark.parametrize("scale", ["code", "paper"])
def test_objective_uses_the_documented_penalty_scaling(world, scale):
    tr = world["train"]
    model = PCBM(concepts=world.bank, lam=0.5 if scale == "paper" else 0.01, penalty_scale=scale).fit(tr.X, tr.y)
    A, W = model.transform(tr.X), model.coef_
    K, M = W.shape
    ce = objective(*_t(A, tr.y, W, model.intercept_), 0.0, 0.0)
    if scale == "paper":
        expected = ce + model.lam / (M * K) * (0.99 * np.abs(W).sum() + 0.01 * (W**2).sum())
    else:
        expected = ce + model.lam * (0.99 * np.abs(W).sum() + 0.01 / 2 * (W**2).sum())
    assert model.objective_ == pytest.approx(expected, rel=1e-4)


def test_recovers_the_planted_class_concept_structure(world):
    tr, te = world["train"], world["test"]
    model = PCBM(concepts=world.bank, lam=0.02).fit(tr.X, tr.y)
    rec = concept_recovery(model.coef_, world.class_concepts)
    assert rec["precision"] >= 0.8 and rec["recall"] >= 0.8
    assert model.score(te.X, te.y) > 0.7
    assert model.n_nonzero_ == np.count_nonzero(model.coef_) < model.coef_.size


def test_larger_lambda_is_sparser(world):
    tr = world["train"]
    nnz = [PCBM(concepts=world.bank, lam=lam).fit(tr.X, tr.y).n_nonzero_ for lam in (1e-3, 3e-2)]
    assert nnz[0] > nnz[1]


def test_hybrid_residual_recovers_what_the_bank_misses(world):
    # drop half the concepts: PCBM cannot see them, PCBM-h's residual on the embedding can
    bank = world.bank.subset(list(range(0, 13, 2)))
    tr, te = world["train"], world["test"]
    pcbm = PCBM(concepts=bank, lam=0.01).fit(tr.X, tr.y)
    hybrid = PCBMHybrid(concepts=bank, lam=0.01, residual_l2=1e-3).fit(tr.X, tr.y)
    np.testing.assert_allclose(hybrid.coef_, pcbm.coef_)  # the concept head is fitted first, then frozen
    assert np.abs(hybrid.residual_logits(te.X)).max() > 0
    assert hybrid.score(te.X, te.y) >= pcbm.score(te.X, te.y)
    assert np.all(PCBM(concepts=bank).fit(tr.X, tr.y).residual_logits(te.X) == 0)


def _released_residual_objective(model, X, y):
    """train_pcbm_h.py's loss on the whole set: CE(concept head + X W_r^T + b_r) + l2 * mean(W_r^2)."""
    Z = model.logits(X).astype(np.float64)
    Z -= Z.max(1, keepdims=True)
    ce = -(Z[np.arange(len(y)), y] - np.log(np.exp(Z).sum(1))).mean()
    return ce + model.residual_l2 * (model.residual_coef_.astype(np.float64) ** 2).mean()


def test_hybrid_defaults_are_the_released_residual_training():
    p = PCBMHybrid().get_params()
    assert (p["residual_solver"], p["residual_l2"], p["residual_lr"], p["residual_epochs"],
            p["residual_batch_size"]) == ("adam", 1e-3, 1e-2, 20, 64)


def test_hybrid_residual_minimises_the_released_objective(world):
    """Full-batch Adam run long minimises l2 * mean(W^2); the ridge solver reaches the same optimum
    when its penalty l2' / 2 * sum(W^2) is scaled to match: l2' = 2 * l2 / (K * d)."""
    bank = world.bank.subset(list(range(0, 13, 2)))
    tr = world["train"]
    K, d = 4, tr.X.shape[1]
    kw = dict(concepts=bank, lam=0.01, device="cpu")
    adam = PCBMHybrid(residual_batch_size=None, residual_epochs=3000, residual_lr=1e-2, **kw).fit(tr.X, tr.y)
    ridge = PCBMHybrid(residual_solver="ridge", residual_l2=2e-3 / (K * d), **kw).fit(tr.X, tr.y)
    ridge.set_params(residual_l2=1e-3)  # scored with the released formula below
    f_adam, f_ridge = _released_residual_objective(adam, tr.X, tr.y), _released_residual_objective(ridge, tr.X, tr.y)
    assert adam.residual_objective_ == pytest.approx(f_adam, rel=1e-4)
    assert f_ridge <= f_adam + 1e-5  # the ridge solution is the exact optimum ...
    assert f_adam - f_ridge < 2e-3  # ... which Adam approaches (flat directions leave W itself less exact)


def test_hybrid_default_penalty_is_much_weaker_than_the_old_ridge(world):
    """The released penalty is ~K*d/2 times weaker per weight than ridge at the same strength, so the
    residual carries more of the prediction."""
    bank = world.bank.subset(list(range(0, 13, 2)))
    tr = world["train"]
    released = PCBMHybrid(concepts=bank, lam=0.01).fit(tr.X, tr.y)
    old = PCBMHybrid(concepts=bank, lam=0.01, residual_solver="ridge", residual_l2=1e-2).fit(tr.X, tr.y)
    assert np.linalg.norm(released.residual_coef_) > 1.2 * np.linalg.norm(old.residual_coef_)


def test_pcbm_and_pcbm_h_take_the_same_keyword_only_parameters(world):
    shared = PCBM().get_params().keys()
    assert shared <= PCBMHybrid().get_params().keys()
    for cls in (PCBM, PCBMHybrid):
        with pytest.raises(TypeError, match="positional"):
            cls(world.bank, 1e-3)


def test_invalid_parameters_get_sklearn_style_messages(world):
    tr = world["train"]
    with pytest.raises(InvalidParameterError, match=r"The 'alpha' parameter of PCBM must be a float in the range \[0.0, 1.0\]. Got 1.5"):
        PCBM(concepts=world.bank, alpha=1.5).fit(tr.X, tr.y)
    with pytest.raises(InvalidParameterError, match="'projection' parameter of PCBMHybrid"):
        PCBMHybrid(concepts=world.bank, projection="papr").fit(tr.X, tr.y)


def test_a_bank_without_vectors_is_refused_with_a_hint(world):
    tr = world["train"]
    with pytest.raises(ValueError, match="needs a ConceptBank with concept vectors"):
        PCBM(concepts=world.bank.with_vectors(None)).fit(tr.X, tr.y)
    with pytest.raises(ValueError, match="same encoder"):
        PCBM(concepts=world.bank).fit(tr.X[:, :10], tr.y)


def _t(A, y, W, b):

    return (torch.from_numpy(A), torch.from_numpy(np.searchsorted(np.unique(y), y)),
            torch.from_numpy(W), torch.from_numpy(b))
