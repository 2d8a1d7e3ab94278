"""Baselines that show what interpretability costs: a linear probe on raw embeddings."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from cbm.bank import ConceptBank, Provenance
from cbm.models._base import BaseConceptModel


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
