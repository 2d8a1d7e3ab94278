"""Elastic-net multinomial logistic regression: the sparse heads of PCBM, LF-CBM and the dense head.

Every solver here minimises, over class weights ``W`` (K, M) and an unpenalised intercept ``b`` (K,)::

    F(W, b) = mean_i CE(softmax(A_i W^T + b + offset_i), y_i) + l1 * |W|_1 + l2 / 2 * |W|_2^2

which is glm-saga's objective with ``l1 = lam * alpha`` and ``l2 = lam * (1 - alpha)``. With
``sample_weight`` w the mean is weighted, ``sum_i w_i CE_i / sum_i w_i``: a weight of 0 drops a
sample and an integer weight repeats it.

:func:`fista` is full-batch accelerated proximal gradient (FISTA) with

* a Lipschitz estimate from power iteration (Böhning's bound ``|[A, 1]|_2^2 / (2N)``) used as a
  ceiling, and backtracking from a smaller step that only costs a dot product: logits are linear in
  the weights, so the logits at the extrapolated point are a combination of the last two iterates'
  logits and each iteration needs exactly two matmuls;
* gradient-based adaptive restart (O'Donoghue & Candès, 2015);
* the proximal step done by :func:`cbm.kernels.elastic_net_prox`.

:func:`elastic_net_path` follows a geometric regularisation path from the smallest penalty that
zeroes every weight down to the requested one (as glm-saga does), with warm starts and the
*sequential strong rule* (Tibshirani et al., 2012): each path point solves only on the concepts
(columns of ``A``) that can be active, then checks the KKT conditions on all columns and re-solves
if the rule discarded a column it should not have. Heads are sparse, so most matmuls run on a few
hundred of the M columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from cbm.kernels import elastic_net_prox

_L_DECAY = 0.85  # let the step grow again after backtracking (curvature falls near the optimum)


@dataclass
class SolverResult:
    """What a solver returns: the weights and how it got there.

    Attributes
    ----------
    coef : Tensor (K, M)
    intercept : Tensor (K,)
    objective : float
        ``F(W, b)`` at the solution (float64 accumulation).
    n_iter : int
        Proximal gradient iterations (all path points together for :func:`elastic_net_path`).
    converged : bool
    path : list of dict
        One entry per path point: ``l1``, ``l2``, ``n_iter``, ``n_active`` (screened columns),
        ``nnz`` (non-zero weights), ``objective``.
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    objective: float
    n_iter: int
    converged: bool
    path: list[dict] = field(default_factory=list)

    @property
    def nnz(self) -> int:
        """Non-zero weights."""
        return int((self.coef != 0).sum())


def objective(A: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, l1: float,
              l2: float, offset: torch.Tensor | None = None, sample_weight: torch.Tensor | None = None) -> float:
    """``F(W, b)`` (see the module docstring) in float64."""
    Z = _logits(A, W, b, offset)
    ce = torch.nn.functional.cross_entropy(Z.double(), y, reduction="none")
    wn = _unit_weights(sample_weight, len(y), A.device)
    ce = ce.mean() if wn is None else (ce * wn.double()).sum()
    W64 = W.double()
    return float(ce + l1 * W64.abs().sum() + 0.5 * l2 * (W64 * W64).sum())


def lipschitz_bound(A: torch.Tensor, n_power: int = 20, seed: int = 0,
                    sample_weight: torch.Tensor | None = None) -> float:
    """Upper estimate of the Lipschitz constant of the (weighted) mean multinomial CE gradient.

    Böhning's bound ``sigma_max([A, 1])^2 / (2N)`` with the top singular value from power
    iteration (padded by 5%: power iteration approaches it from below); with weights, the top
    eigenvalue of ``[A, 1]^T diag(w) [A, 1] / (2 sum w)``.
    """
    wn = _unit_weights(sample_weight, A.shape[0], A.device)
    n = A.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(A.shape[1] + 1, generator=gen, dtype=torch.float32).to(A.device)
    v /= v.norm()
    sq = torch.zeros((), device=A.device)
    for _ in range(n_power):
        u = A @ v[:-1] + v[-1]
        if wn is not None:
            u = u * (wn * n)
        w = torch.cat([A.T @ u, u.sum().reshape(1)])
        sq = w.norm()
        v = w / sq.clamp_min(1e-30)
    return 1.05 * float(sq) / (2 * n) + 1e-12


def fista(A: torch.Tensor, y: torch.Tensor, l1: float, l2: float, *, W0: torch.Tensor | None = None,
          b0: torch.Tensor | None = None, n_classes: int | None = None,
          offset: torch.Tensor | None = None, lipschitz: float | None = None,
          max_iter: int = 2000, tol: float = 1e-5, sample_weight: torch.Tensor | None = None) -> SolverResult:
    """Solve the elastic-net multinomial problem on ``A`` (N, M) with FISTA.

    Parameters
    ----------
    A : Tensor (N, M) float32
        Features (concept activations).
    y : LongTensor (N,)
        Class indices in ``[0, n_classes)``.
    l1, l2 : float
        Penalty strengths (``l1 |W|_1 + l2/2 |W|^2``); the intercept is not penalised.
    W0, b0 : Tensor, optional
        Warm start.
    offset : Tensor (N, K), optional
        Fixed logits added to the model's (PCBM-h trains its residual with the concept head frozen).
    lipschitz : float, optional
        Step-size ceiling; estimated by :func:`lipschitz_bound` when None.
    max_iter : int
    tol : float
        Stop when the largest entry of the gradient mapping (the prox-gradient step divided by the
        step size, zero exactly at the optimum) is below ``tol``.
    sample_weight : Tensor (N,), optional
        Non-negative weights of the samples' CE terms (a weighted mean).
    """
    K = int(n_classes if n_classes is not None else int(y.max()) + 1)
    N, M = A.shape
    dev = A.device
    W = torch.zeros(K, M, device=dev) if W0 is None else W0.to(dev, torch.float32).clone()
    wn = _unit_weights(sample_weight, N, dev)
    b = _init_intercept(y, K, dev, wn) if b0 is None else b0.to(dev, torch.float32).clone()
    Y = torch.zeros(N, K, device=dev).scatter_(1, y.view(-1, 1), 1.0)
    L_max = lipschitz if lipschitz is not None else lipschitz_bound(A, sample_weight=sample_weight)
    L = L_max / 4
    Zx = _logits(A, W, b, offset)
    yW, yb, Zy = W, b, Zx
    t, it, converged = 1.0, 0, False
    while it < max_iter:
        it += 1
        f_y, R = _loss_and_residual(Zy, Y, wn)
        gW = R.T @ A
        gb = R.sum(0)
        L = max(L * _L_DECAY, L_max * 1e-3)
        while True:
            step = 1.0 / L
            W_new = elastic_net_prox(yW, gW, step, l1, l2)
            b_new = yb - step * gb
            Z_new = _logits(A, W_new, b_new, offset)
            dW, db = W_new - yW, b_new - yb
            quad = float((gW * dW).sum() + (gb * db).sum()) + 0.5 * L * float((dW * dW).sum() + (db * db).sum())
            f_new = _loss(Z_new, Y, wn)
            if f_new <= f_y + quad + 1e-7 * abs(f_y) or L >= L_max:
                break
            L = min(2 * L, L_max)
        gmap = max(float(dW.abs().max()) if dW.numel() else 0.0, float(db.abs().max())) * L
        if gmap < tol:
            W, b, Zx, converged = W_new, b_new, Z_new, True
            break
        # gradient-based restart: momentum that points uphill is dropped
        restart = float((dW * (W_new - W)).sum() + (db * (b_new - b)).sum()) < 0
        t_new = 1.0 if restart else (1 + math.sqrt(1 + 4 * t * t)) / 2
        beta = 0.0 if restart else (t - 1) / t_new
        yW = W_new + beta * (W_new - W)
        yb = b_new + beta * (b_new - b)
        Zy = Z_new + beta * (Z_new - Zx)
        W, b, Zx, t = W_new, b_new, Z_new, t_new
    obj = objective(A, y, W, b, l1, l2, offset, sample_weight)
    return SolverResult(W, b, obj, it, converged)


def lambda_max(A: torch.Tensor, y: torch.Tensor, n_classes: int | None = None,
               offset: torch.Tensor | None = None, sample_weight: torch.Tensor | None = None) -> float:
    """Smallest ``l1`` for which ``W = 0`` is optimal (intercept fitted): ``max |grad_W F(0, b*)|``."""
    K = int(n_classes if n_classes is not None else int(y.max()) + 1)
    wn = _unit_weights(sample_weight, len(y), A.device)
    if offset is not None:
        res = fista(A[:, :0], y, 0.0, 0.0, n_classes=K, offset=offset, lipschitz=0.25, max_iter=200, tol=1e-7,
                    sample_weight=sample_weight)
        b = res.intercept
    else:
        b = _init_intercept(y, K, A.device, wn)
    _, R = _loss_and_residual(_logits(A[:, :0], torch.zeros(K, 0, device=A.device), b, offset),
                              torch.nn.functional.one_hot(y, K).float(), wn)
    return float((R.T @ A).abs().max())


def elastic_net_path(A: torch.Tensor, y: torch.Tensor, l1: float, l2: float, *,
                     n_classes: int | None = None, n_lambdas: int = 5, screening: bool = True,
                     offset: torch.Tensor | None = None, max_iter: int = 2000, tol: float = 1e-5,
                     path_tol: float | None = None, progress=None,
                     sample_weight: torch.Tensor | None = None) -> SolverResult:
    """Solve at ``(l1, l2)`` by warm-started FISTA along a geometric path with strong-rule screening.

    The path scales both penalties by ``s`` from ``lambda_max / l1`` down to 1 in ``n_lambdas``
    steps (glm-saga's path, ending at the target). Intermediate points are solved to
    ``path_tol`` (default ``100 * tol``: they only provide warm starts and screening scores);
    the last to ``tol``.

    Parameters
    ----------
    progress : callable, optional
        Called with each finished path entry (dict); used for progress bars.
    sample_weight : Tensor (N,), optional
        Non-negative weights of the samples' CE terms (see :func:`fista`).

    Returns
    -------
    SolverResult whose ``path`` lists every path point.
    """
    K = int(n_classes if n_classes is not None else int(y.max()) + 1)
    N, M = A.shape
    dev = A.device
    if l1 <= 0 or n_lambdas <= 1:
        res = fista(A, y, l1, l2, n_classes=K, offset=offset, max_iter=max_iter, tol=tol,
                    sample_weight=sample_weight)
        res.path = [_entry(l1, l2, res, M)]
        if progress is not None:
            progress(res.path[0])
        return res
    path_tol = 100 * tol if path_tol is None else path_tol
    Y = torch.nn.functional.one_hot(y, K).float()
    wn = _unit_weights(sample_weight, N, dev)
    L_full = lipschitz_bound(A, sample_weight=sample_weight)
    W = torch.zeros(K, M, device=dev)
    b = _init_intercept(y, K, dev, wn)
    _, R = _loss_and_residual(_logits(A, W, b, offset), Y, wn)
    score = (R.T @ A).abs().amax(0)  # (M,) largest class gradient per column
    s_max = max(float(score.max()) / l1, 1.0)
    scales = torch.logspace(math.log10(s_max), 0.0, n_lambdas).tolist()
    prev_l1, total, path, res = float(score.max()), 0, [], None
    for i, s in enumerate(scales):
        cur_l1, cur_l2 = s * l1, s * l2
        last = i == len(scales) - 1
        keep = (W != 0).any(0)
        if screening:
            keep |= score >= 2 * cur_l1 - prev_l1
        else:
            keep[:] = True
        for _ in range(10):  # KKT loop: re-solve while the strong rule dropped a needed column
            idx = keep.nonzero().flatten()
            sub = A[:, idx] if len(idx) < M else A
            res = fista(sub, y, cur_l1, cur_l2, W0=W[:, idx], b0=b, n_classes=K, offset=offset,
                        lipschitz=L_full, sample_weight=sample_weight,
                        max_iter=max_iter, tol=tol if last else path_tol)
            total += res.n_iter
            W = torch.zeros(K, M, device=dev)
            W[:, idx] = res.coef
            b = res.intercept
            _, R = _loss_and_residual(_logits(sub, res.coef, b, offset), Y, wn)
            score = (R.T @ A).abs().amax(0)
            violators = (~keep) & (score > cur_l1 * (1 + 1e-3) + tol)
            if not screening or not bool(violators.any()):
                break
            keep |= violators
        entry = {"l1": cur_l1, "l2": cur_l2, "n_iter": res.n_iter, "n_active": int(keep.sum()),
                 "nnz": int((W != 0).sum()), "objective": res.objective}
        path.append(entry)
        if progress is not None:
            progress(entry)
        prev_l1 = cur_l1
    return SolverResult(W, b, objective(A, y, W, b, l1, l2, offset, sample_weight), total, res.converged, path)


# -- internals ------------------------------------------------------------------------------
def _unit_weights(sample_weight: torch.Tensor | None, n: int, dev: torch.device) -> torch.Tensor | None:
    """Sample weights (N,) normalised to sum 1 (None: the plain mean)."""
    if sample_weight is None:
        return None
    w = torch.as_tensor(sample_weight, dtype=torch.float32, device=dev).reshape(n)
    return w / w.sum()


def _init_intercept(y: torch.Tensor, K: int, dev: torch.device, wn: torch.Tensor | None = None) -> torch.Tensor:
    """Log (weighted) class frequencies: the optimal intercept when every weight is zero."""
    counts = torch.bincount(y, weights=None if wn is None else wn.to(y.device), minlength=K).float().to(dev)
    if wn is not None:
        counts = counts * len(y)  # back on the count scale, so the 0.5 floor means half a sample
    return torch.log(counts.clamp_min(0.5) / counts.sum())


def _logits(A, W, b, offset):
    Z = torch.addmm(b, A, W.T) if A.shape[1] else b.expand(A.shape[0], -1).clone()
    return Z if offset is None else Z + offset


def _loss(Z: torch.Tensor, Y: torch.Tensor, wn: torch.Tensor | None = None) -> float:
    ce = (torch.logsumexp(Z, 1) - (Z * Y).sum(1)).double()
    return float(ce.mean() if wn is None else (ce * wn.double()).sum())


def _loss_and_residual(Z: torch.Tensor, Y: torch.Tensor,
                       wn: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """Mean CE and its gradient w.r.t. the logits, ``(softmax(Z) - Y) / N`` (``* wn`` when weighted)."""
    lse = torch.logsumexp(Z, 1, keepdim=True)
    ce = (lse.squeeze(1) - (Z * Y).sum(1)).double()
    if wn is None:
        return float(ce.mean()), torch.exp(Z - lse).sub_(Y).div_(Z.shape[0])
    return float((ce * wn.double()).sum()), torch.exp(Z - lse).sub_(Y).mul_(wn[:, None])


def _entry(l1: float, l2: float, res: SolverResult, M: int) -> dict:
    return {"l1": l1, "l2": l2, "n_iter": res.n_iter, "n_active": M, "nnz": res.nnz,
            "objective": res.objective}


__all__ = ["SolverResult", "elastic_net_path", "fista", "lambda_max", "lipschitz_bound", "objective"]
