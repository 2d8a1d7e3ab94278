"""The global view of a model: its class-concept weights, top concepts per class, unused concepts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def weight_matrix(model: Any) -> pd.DataFrame:
    """The class-concept weight matrix ``coef_`` as a DataFrame (classes x concepts)."""
    return pd.DataFrame(np.asarray(model.coef_), index=model.class_names_, columns=model.concept_names_)


def top_concepts(model: Any, n: int = 5) -> pd.DataFrame:
    """Per class, the ``n`` concepts with the largest positive and the ``n`` most negative weights.

    Long format: columns ``class, sign, rank, concept, weight``; zero weights are left out.
    """
    W = np.asarray(model.coef_)
    rows = []
    for k, cls in enumerate(model.class_names_):
        order = np.argsort(W[k], kind="stable")
        for sign, idx in (("positive", order[::-1]), ("negative", order)):
            picked = [j for j in idx if (W[k, j] > 0 if sign == "positive" else W[k, j] < 0)][:n]
            rows += [(cls, sign, r + 1, model.concept_names_[j], float(W[k, j])) for r, j in enumerate(picked)]
    return pd.DataFrame(rows, columns=["class", "sign", "rank", "concept", "weight"])


def unused_concepts(model: Any, tol: float = 0.0) -> list[str]:
    """Concepts whose weight is at most ``tol`` in absolute value for every class."""
    unused = np.abs(np.asarray(model.coef_)).max(0) <= tol
    return [n for n, u in zip(model.concept_names_, unused, strict=True) if u]
