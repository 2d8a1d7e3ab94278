"""Post-hoc concept bottleneck models, PCBM and PCBM-h (Yuksekgonul et al., ICLR 2023).

A PCBM projects the backbone embedding ``f`` onto concept vectors ``c_i`` (text embeddings or
CAVs) and fits a sparse multinomial logistic regression on the projections. PCBM-h adds a linear
residual on ``f``, trained with the concept head frozen, to recover the accuracy the bottleneck
loses; ``residual_logits`` shows how much the prediction relies on it. As released
(``train_pcbm_h.py``), the residual is trained by Adam (lr 1e-2, batches of 64, 20 epochs) on
``CE + l2_penalty * mean(W_r^2)`` with ``l2_penalty = 1e-3``; ``residual_solver="ridge"`` solves
``CE + residual_l2 / 2 |W_r|^2`` to optimality instead.

Projection variants (``projection=``):

* ``"code"`` (default, the released code's signed margin): ``(<c_i, f> + b_i) / |c_i|`` with the
  bank's ``intercepts`` b_i (CAV bias; 0 when the bank has none). For unit text embeddings without
  intercepts it is the plain dot product.
* ``"paper"``: ``<f, c_i> / |c_i|^2``, the scalar projection coefficient of the paper.

Head penalty (``penalty_scale=``), with ``alpha`` the L1 ratio:

* ``"code"`` (default): ``CE + lam * (alpha |W|_1 + (1 - alpha) / 2 |W|_2^2)``, i.e. what the
  released code passes to scikit-learn's ``SGDClassifier(alpha=lam, l1_ratio=alpha)``;
* ``"paper"``: ``CE + lam / (M K) * (alpha |W|_1 + (1 - alpha) |W|_2^2)``.

The released code fits K one-vs-rest SGD problems; here one multinomial problem is solved to
optimality by :func:`cbm.solvers.elastic_net_path` (FISTA, warm starts, strong-rule screening).

``fit(X, y, sample_weight=w)`` weighs each sample's CE term: the mean becomes
``sum_i w_i CE_i / sum_i w_i`` in the head (and in PCBM-h's residual), so a zero weight drops a
sample and an integer weight repeats it (the penalty is unchanged).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from cbm import kernels
from cbm.bank import ConceptBank
from cbm.models._base import (
    BaseConceptModel,
    as_tensor,
    parameter_constraints,
    require_vectors,
    weighted_mean,
)
from cbm.solvers import elastic_net_path, fista

PROJECTIONS = ("code", "paper")


def projection_matrix(bank: ConceptBank, projection: str) -> tuple[np.ndarray, np.ndarray]:
    """Directions (M, d) and biases (M,) such that activations are ``X @ D.T + bias``."""
    C = bank.vectors.astype(np.float64)
    norms = np.linalg.norm(C, axis=1).clip(1e-12)
    if projection == "paper":
        return (C / norms[:, None] ** 2).astype(np.float32), np.zeros(len(C), np.float32)
    inter = np.zeros(len(C)) if bank.intercepts is None else bank.intercepts.astype(np.float64)
    return (C / norms[:, None]).astype(np.float32), (inter / norms).astype(np.float32)


class PCBM(BaseConceptModel):
    """Post-hoc CBM: concept projections and a sparse (elastic-net) multinomial head.

    Parameters
    ----------
    concepts : ConceptBank
        Concepts with ``vectors`` (M, d) and optionally ``intercepts`` (M,).
    lam : float, default=1e-3
        Regularisation strength (scaled as ``penalty_scale`` says). The released scripts default
        to 1e-5 on their own features; choose it on a validation split, never on the test split.
    alpha : float in [0, 1], default=0.99
        L1 ratio of the elastic net (the paper's 0.99).
    projection : {"code", "paper"}, default="code"
        Concept projection formula (see the module docstring).
    penalty_scale : {"code", "paper"}, default="code"
        How ``lam`` scales the penalty (see the module docstring).
    n_lambdas : int, default=5
        Points on the warm-started regularisation path (1 = solve at ``lam`` directly).
    max_iter : int, default=2000
    tol : float, default=1e-5
        Gradient-mapping tolerance of the solver.
    random_state : int, RandomState or None, default=0
        Seeds the local generators of the fit (None: a fresh seed per fit).
    device : str ("auto" = CUDA when present), verbose : bool

    Attributes
    ----------
    coef_ : ndarray (K, M), intercept_ : ndarray (K,)
    n_iter_ : int
        Solver iterations of the head (all path points).
    n_nonzero_ : int
        Non-zero class-concept weights.
    objective_ : float
        Final value of the penalised objective.
    path_ : list of dict
        The solver's regularisation path (penalties, iterations, non-zeros, objective).
    """

    method = "pcbm"
    supports_vector_concepts = True
    vector_space = "embedding"
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", "verbose", positive=("tol",), non_negative=("lam",),
        counts=("n_lambdas", "max_iter"), alpha=[Interval(Real, 0, 1, closed="both")],
        projection=[StrOptions(set(PROJECTIONS))], penalty_scale=[StrOptions({"code", "paper"})])

    def __init__(self, *, concepts: ConceptBank | None = None, lam: float = 1e-3, alpha: float = 0.99,
                 projection: str = "code", penalty_scale: str = "code", n_lambdas: int = 5,
                 max_iter: int = 2000, tol: float = 1e-5, random_state: int = 0, device: str = "auto",
                 verbose: bool = False):
        self._keep_params(locals())

    def penalties(self, n_concepts: int, n_classes: int) -> tuple[float, float]:
        """``(l1, l2)`` of the solver objective ``CE + l1 |W|_1 + l2/2 |W|^2`` for these params."""
        if self.penalty_scale == "paper":
            s = self.lam / (n_concepts * n_classes)
            return s * self.alpha, 2 * s * (1 - self.alpha)
        return self.lam * self.alpha, self.lam * (1 - self.alpha)

    def _fit(self, X: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor | None = None,
             **fit_params: Any) -> None:
        if fit_params:
            raise TypeError(f"{type(self).__name__}.fit got unexpected arguments {sorted(fit_params)}.")
        bank = require_vectors(self)
        D, bias = projection_matrix(bank, self.projection)
        self._D, self._bias = as_tensor(D, self.device_), as_tensor(bias, self.device_)
        A = self._activations(X)
        l1, l2 = self.penalties(A.shape[1], len(self.classes_))
        res = fit_head(A, y, l1, l2, len(self.classes_), self, desc=type(self).__name__,
                       sample_weight=sample_weight)
        self.coef_, self.intercept_ = res.coef.cpu().numpy(), res.intercept.cpu().numpy()
        self.objective_, self.path_ = res.objective, res.path
        self.n_nonzero_, self.n_iter_ = res.nnz, res.n_iter
        self.base_concepts_ = bank

    def _directions(self) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "_D", None) is None or self._D.device != self._device():
            D, bias = projection_matrix(self.base_concepts_, self.projection)
            self._D, self._bias = as_tensor(D, self._device()), as_tensor(bias, self._device())
        return self._D, self._bias

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        D, bias = self._directions()
        return kernels.concept_scores(X, D, bias=bias, normalize=False)

    def _to_vector_space(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def _score_vectors(self, X: torch.Tensor, vectors: torch.Tensor, intercepts: torch.Tensor) -> torch.Tensor:
        bank = ConceptBank([f"added {i}" for i in range(len(vectors))], vectors=vectors.cpu().numpy(),
                           intercepts=intercepts.cpu().numpy())
        D, bias = projection_matrix(bank, self.projection)
        return kernels.concept_scores(X, as_tensor(D, X.device), bias=as_tensor(bias, X.device),
                                      normalize=False)


class PCBMHybrid(PCBM):
    """PCBM-h: a PCBM plus a linear residual on the embedding, fitted with the concept head frozen.

    It takes every parameter of :class:`PCBM`, and these for the residual:

    Parameters
    ----------
    residual_solver : {"adam", "ridge"}, default="adam"
        "adam": the released training, minibatch Adam on ``CE + residual_l2 * mean(W_r^2)`` (bias
        unpenalised, weights initialised as ``nn.Linear``'s). "ridge": ``CE + residual_l2 / 2 |W_r|^2``
        solved to optimality by FISTA (full batch); a per-weight penalty ``K * d / 2`` times stronger
        for the same ``residual_l2``.
    residual_l2 : float, default=1e-3
        Penalty weight on the residual weights (the released ``--l2-penalty``).
    residual_lr : float, default=1e-2
        Adam learning rate ("adam" only).
    residual_epochs : int, default=20
        Adam epochs ("adam" only).
    residual_batch_size : int or None, default=64
        Adam batch size ("adam" only; None = full batch).

    Attributes
    ----------
    residual_coef_ : ndarray (K, d), residual_intercept_ : ndarray (K,)
    residual_objective_ : float
        The residual's training objective (as ``residual_solver`` defines it) on the whole training set.
    residual_n_iter_ : int
        Adam steps or FISTA iterations of the residual.
    """

    method = "pcbm-h"
    hybrid = True
    _parameter_constraints: dict = PCBM._parameter_constraints | parameter_constraints(
        positive=("residual_lr",), non_negative=("residual_l2",), counts=("residual_epochs",),
        residual_solver=[StrOptions({"adam", "ridge"})],
        residual_batch_size=[Interval(Integral, 1, None, closed="left"), None])

    def __init__(self, *, concepts: ConceptBank | None = None, lam: float = 1e-3, alpha: float = 0.99,
                 projection: str = "code", penalty_scale: str = "code", n_lambdas: int = 5,
                 max_iter: int = 2000, tol: float = 1e-5, residual_solver: str = "adam",
                 residual_l2: float = 1e-3, residual_lr: float = 1e-2, residual_epochs: int = 20,
                 residual_batch_size: int | None = 64, random_state: int = 0, device: str = "auto",
                 verbose: bool = False):
        self._keep_params(locals())

    def _fit(self, X: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor | None = None,
             **fit_params: Any) -> None:
        super()._fit(X, y, sample_weight=sample_weight, **fit_params)
        head = self._activations(X) @ as_tensor(self.coef_, X.device).T + as_tensor(self.intercept_, X.device)
        if self.residual_solver == "ridge":
            res = fista(X, y, 0.0, float(self.residual_l2), n_classes=len(self.classes_), offset=head,
                        max_iter=self.max_iter, tol=self.tol, sample_weight=sample_weight)
            W, b, self.residual_objective_, self.residual_n_iter_ = res.coef, res.intercept, res.objective, res.n_iter
        else:
            W, b = self._fit_residual_adam(X, y, head, sample_weight)
        self.residual_coef_ = W.cpu().numpy()
        self.residual_intercept_ = b.cpu().numpy()

    def _fit_residual_adam(self, X: torch.Tensor, y: torch.Tensor, head: torch.Tensor,
                           sample_weight: torch.Tensor | None = None):
        """The released residual training: Adam on ``CE(head + X W^T + b) + l2 * mean(W^2)``, each
        batch's CE weighted by ``sample_weight`` (see :func:`~cbm.models._base.weighted_mean`)."""
        K, d = len(self.classes_), X.shape[1]
        gen = torch.Generator(device="cpu").manual_seed(self._seed)
        bound = 1.0 / d ** 0.5  # nn.Linear's default initialisation, from the local generator
        W = ((torch.rand(K, d, generator=gen) * 2 - 1) * bound).to(X.device).requires_grad_()
        b = ((torch.rand(K, generator=gen) * 2 - 1) * bound).to(X.device).requires_grad_()
        opt = torch.optim.Adam([W, b], lr=self.residual_lr)
        bs = len(X) if self.residual_batch_size is None else int(self.residual_batch_size)
        steps = 0
        for _ in range(self.residual_epochs):
            for idx in torch.randperm(len(X), generator=gen).split(bs):
                idx = idx.to(X.device)
                ce = torch.nn.functional.cross_entropy(head[idx] + X[idx] @ W.T + b, y[idx], reduction="none")
                loss = weighted_mean(ce, sample_weight, idx) + self.residual_l2 * (W * W).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(head + X @ W.T + b, y, reduction="none")
            full = weighted_mean(ce, sample_weight) + self.residual_l2 * (W * W).mean()
        self.residual_objective_, self.residual_n_iter_ = float(full), steps
        return W.detach(), b.detach()

    def _residual(self, X: torch.Tensor) -> torch.Tensor:
        return X @ as_tensor(self.residual_coef_, X.device).T + as_tensor(self.residual_intercept_, X.device)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"residual_coef": self.residual_coef_, "residual_intercept": self.residual_intercept_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.residual_coef_ = tensors["residual_coef"].astype(np.float32)
        self.residual_intercept_ = tensors["residual_intercept"].astype(np.float32)


def fit_head(A: torch.Tensor, y: torch.Tensor, l1: float, l2: float, K: int, model: Any, desc: str,
             sample_weight: torch.Tensor | None = None):
    """Solve a head with :func:`elastic_net_path` (``model``'s n_lambdas, max_iter, tol), showing a
    tqdm bar over path points when ``model.verbose``."""
    from tqdm.auto import tqdm

    n = model.n_lambdas if l1 > 0 else 1
    with tqdm(total=n, desc=desc, disable=not model.verbose) as bar:
        def progress(entry: dict) -> None:
            bar.set_postfix(nnz=entry["nnz"], obj=f"{entry['objective']:.4f}")
            bar.update(1)

        return elastic_net_path(A, y, l1, l2, n_classes=K, n_lambdas=n, max_iter=model.max_iter,
                                tol=model.tol, progress=progress, sample_weight=sample_weight)
