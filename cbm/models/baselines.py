"""Baselines that show what interpretability costs: a linear probe on raw embeddings and a dense
concept head (what sparsity costs)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from cbm.bank import ConceptBank, Provenance
from cbm.models._base import BaseConceptModel
from cbm.models.pcbm import PCBM


class LinearProbe(BaseConceptModel):
    """Multinomial logistic regression on the raw embedding (the black-box baseline).

    Its "concepts" are the embedding dimensions, so explanations and the report code treat it
    like any other model, but nothing about it is human-readable.
    """

    method = "linear-probe"

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int = 0, device: str = "cpu"):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.device = device

    def _fit(self, X: torch.Tensor, y: torch.Tensor, **fit_params) -> None:
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        clf.fit(X.cpu().numpy(), y.cpu().numpy())
        coef, inter = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: sklearn returns one row
            coef, inter = np.vstack([-coef, coef]) / 2, np.array([-inter[0], inter[0]]) / 2
        self.coef_, self.intercept_ = coef, inter
        names = [f"feature {i}" for i in range(X.shape[1])]
        self.base_concepts_ = ConceptBank(names, provenance=[Provenance("manual", {"note": "embedding dimension"})
                                                              for _ in names])

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        return X


class DenseConceptHead(PCBM):
    """A dense, L2-only multinomial head on PCBM's concept projections.

    The control for sparse heads: the same concept activations as :class:`~cbm.models.pcbm.PCBM`
    (same ``projection``), but ``CE + lam / 2 |W|_2^2`` with no L1 term, so every concept gets a
    weight for every class. Comparing it with PCBM shows what sparsity costs in accuracy.

    Parameters
    ----------
    concepts : ConceptBank
    lam : float, default=1e-4
        L2 strength.
    projection : {"code", "paper"}, default="code"
    max_iter, tol, random_state, device, verbose : as PCBM
    """

    method = "dense-head"
    _parameter_constraints: dict = {
        k: v for k, v in PCBM._parameter_constraints.items()
        if k not in ("alpha", "penalty_scale", "n_lambdas")
    }

    def __init__(self, concepts: ConceptBank | None = None, lam: float = 1e-4, projection: str = "code",
                 max_iter: int = 2000, tol: float = 1e-5, random_state: int = 0, device: str = "auto",
                 verbose: bool = False):
        self.concepts = concepts
        self.lam = lam
        self.projection = projection
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    n_lambdas = 1  # read by the shared head solver: no path without an L1 term

    def penalties(self, n_concepts: int, n_classes: int) -> tuple[float, float]:
        """``(0, lam)``: L2 only."""
        return 0.0, float(self.lam)
