"""The elastic-net multinomial solvers reach the optimum: KKT conditions, an independent slow
reference (plain ISTA in float64), path == direct solve, and the penalty threshold lambda_max."""

import numpy as np
import pytest
import torch

from cbm.solvers import elastic_net_path, fista, lambda_max, objective

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 12)).astype(np.float32)
    W = np.zeros((3, 12), np.float32)
    W[0, :2], W[1, 2:4], W[2, 4:6] = 2.0, 2.0, 2.0
    y = (A @ W.T + rng.gumbel(size=(300, 3))).argmax(1)
    return torch.from_numpy(A), torch.from_numpy(y)


def _kkt_violation(A, y, W, b, l1, l2):
    """Largest violation of the optimality conditions of the elastic-net problem."""
    Z = A.double() @ W.double().T + b.double()
    R = (torch.softmax(Z, 1) - torch.nn.functional.one_hot(y, W.shape[0])) / len(y)
    G = R.T @ A.double() + l2 * W.double()
    nz = W != 0
    on = (G[nz] + l1 * torch.sign(W[nz].double())).abs().max() if nz.any() else 0.0
    off = (G[~nz].abs() - l1).clamp_min(0).max() if (~nz).any() else 0.0
    return max(float(on), float(off), float(R.sum(0).abs().max()))


def test_fista_satisfies_the_optimality_conditions(problem):
    A, y = problem
    res = fista(A, y, 0.01, 0.001, tol=1e-7, max_iter=5000)
    assert res.converged
    assert _kkt_violation(A, y, res.coef, res.intercept, 0.01, 0.001) < 1e-4
    assert 0 < res.nnz < res.coef.numel()  # the L1 term produced exact zeros


def _ista_reference(A, y, l1, l2, n_iter=800):
    """Plain proximal gradient in float64 with the safe step 1/L: slow, simple, independent."""
    A = A.double()
    Y = torch.nn.functional.one_hot(y, 3).double()
    W, b = torch.zeros(3, A.shape[1], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    ones = torch.ones(len(A), 1, dtype=torch.float64)
    step = 2 * len(A) / torch.linalg.matrix_norm(torch.cat([A, ones], 1), ord=2) ** 2
    for _ in range(n_iter):
        R = (torch.softmax(A @ W.T + b, 1) - Y) / len(A)
        V = W - step * (R.T @ A)
        W = torch.sign(V) * (V.abs() - step * l1).clamp_min(0) / (1 + step * l2)
        b = b - step * R.sum(0)
    return W.float(), b.float()


@pytest.mark.slow
def test_fista_reaches_the_objective_of_a_slow_reference(problem):
    A, y = problem
    W_ref, b_ref = _ista_reference(A, y, 0.01, 0.002)
    ours = fista(A, y, 0.01, 0.002, tol=1e-8, max_iter=20000)
    f_ref = objective(A, y, W_ref, b_ref, 0.01, 0.002)
    assert ours.objective <= f_ref + 1e-7  # at least as good as the reference ...
    assert ours.objective == pytest.approx(f_ref, abs=1e-4)  # ... and the same optimum
    np.testing.assert_allclose(ours.coef.numpy(), W_ref.numpy(), atol=2e-2)


def test_path_and_screening_reach_the_direct_solution(problem):
    A, y = problem
    direct = fista(A, y, 0.02, 0.0, tol=1e-7, max_iter=5000)
    path = elastic_net_path(A, y, 0.02, 0.0, n_lambdas=6, tol=1e-7)
    unscreened = elastic_net_path(A, y, 0.02, 0.0, n_lambdas=6, tol=1e-7, screening=False)
    assert len(path.path) == 6
    assert [e["l1"] for e in path.path] == sorted((e["l1"] for e in path.path), reverse=True)
    assert path.path[-1]["l1"] == pytest.approx(0.02)
    for res in (path, unscreened):
        assert res.objective == pytest.approx(direct.objective, abs=1e-6)
        assert _kkt_violation(A, y, res.coef, res.intercept, 0.02, 0.0) < 1e-4


def test_lambda_max_is_the_threshold_for_an_all_zero_head(problem):
    A, y = problem
    lmax = lambda_max(A, y)
    assert fista(A, y, lmax * 1.01, 0.0, tol=1e-7).nnz == 0
    assert fista(A, y, lmax * 0.8, 0.0, tol=1e-7).nnz > 0


def test_offset_logits_are_held_fixed(problem):
    A, y = problem
    offset = torch.randn(len(y), 3)
    res = fista(A, y, 0.0, 0.01, offset=offset, tol=1e-7, max_iter=5000)
    Z = A.double() @ res.coef.double().T + res.intercept.double() + offset.double()
    R = (torch.softmax(Z, 1) - torch.nn.functional.one_hot(y, 3)) / len(y)
    assert float((R.T @ A.double() + 0.01 * res.coef.double()).abs().max()) < 1e-5
    assert res.objective == pytest.approx(objective(A, y, res.coef, res.intercept, 0.0, 0.01, offset))


def test_larger_l1_gives_a_sparser_head(problem):
    A, y = problem
    nnz = [elastic_net_path(A, y, l1, 0.0, tol=1e-6).nnz for l1 in (0.002, 0.02, 0.1)]
    assert nnz[0] > nnz[1] > nnz[2]
