"""Per-prediction explanations: each concept's contribution to a class score, and the
:class:`Explanation` of a batch (margin, concepts for and against)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cbm.explain._inputs import Target, activations_and_residual, target_classes


def contributions(model: Any, activations: Any, residual: Any = None, target: Target = None
                  ) -> tuple[np.ndarray, Any]:
    """Each concept's contribution ``coef_[k, j] * A[n, j]`` to class ``k``'s score.

    Parameters
    ----------
    activations : array of shape (M,) or (N, M)
        One sample or a batch.
    residual : array of shape (K,) or (N, K), optional
        Residual logits of hybrid models.
    target : class name, index, or one per sample, optional
        The class explained; default the predicted class.

    Returns
    -------
    contrib : ndarray of shape (M,) or (N, M)
    residual_part : float, ndarray of shape (N,), or None
        The residual's share of the target logit (None for pure concept models).
    """
    single = np.ndim(activations) == 1
    A = np.atleast_2d(np.asarray(activations, np.float32))
    R = None if residual is None else np.asarray(residual, np.float32).reshape(len(A), -1)
    A, R = activations_and_residual(model, None, A, R)
    t = target_classes(model, target, model.logits_from_activations(A, R))
    contrib = A * model.coef_[t]
    res = None if R is None else R[np.arange(len(A)), t]
    if single:
        return contrib[0], None if res is None else float(res[0])
    return contrib, res


@dataclass
class Explanation:
    """Why a model predicted what it did, for a batch of N samples.

    Attributes
    ----------
    activations : ndarray (N, M)
    logits : ndarray (N, K)
    residual : ndarray (N, K) or None
        Residual logits of hybrid models (shown apart from the concepts).
    target : ndarray (N,)
        The class explained for each sample (the predicted class unless asked otherwise).
    runner_up : ndarray (N,)
        The highest-scoring other class.
    margin : ndarray (N,)
        ``logit[target] - logit[runner_up]``.
    contributions : ndarray (N, M)
        Contributions to the target class (the full (N, K, M) tensor comes from :meth:`all_classes`).
    top_positive, top_negative : ndarray (N, top)
        Concept indices with the largest positive / most negative contributions.
    """

    activations: np.ndarray
    logits: np.ndarray
    residual: np.ndarray | None
    target: np.ndarray
    runner_up: np.ndarray
    margin: np.ndarray
    contributions: np.ndarray
    top_positive: np.ndarray
    top_negative: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    concept_names: list[str]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.logits)

    @property
    def pred(self) -> np.ndarray:
        """Predicted class index per sample."""
        return self.logits.argmax(1)

    def for_class(self, k: int | str) -> np.ndarray:
        """Contributions (N, M) to class ``k`` (index or name)."""
        k = self.class_names.index(k) if isinstance(k, str) else int(k)
        return self.activations * self.coef[k]

    def all_classes(self) -> np.ndarray:
        """Contributions to every class, shape (N, K, M); memory N*K*M floats, so use on small batches."""
        return self.activations[:, None, :] * self.coef[None, :, :]

    def residual_part(self) -> np.ndarray | None:
        """The residual's share (N,) of the target logit, None for pure concept models."""
        return None if self.residual is None else self.residual[np.arange(len(self)), self.target]

    def table(self, i: int) -> pd.DataFrame:
        """Sample ``i``: one row per concept (activation, weight, contribution), largest |contribution| first."""
        k = int(self.target[i])
        df = pd.DataFrame({
            "concept": self.concept_names, "activation": self.activations[i],
            "weight": self.coef[k], "contribution": self.contributions[i],
        })
        return df.reindex(df["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def summary(self, i: int) -> str:
        """A few readable lines for sample ``i`` (used by ``cbm explain``)."""
        k, r = int(self.target[i]), int(self.runner_up[i])
        lines = [f"class {self.class_names[k]!r}: score {self.logits[i, k]:.3f}, margin {self.margin[i]:+.3f} "
                 f"over {self.class_names[r]!r}"]
        for label, idx in (("for", self.top_positive[i]), ("against", self.top_negative[i])):
            parts = [f"{self.concept_names[j]} ({self.contributions[i, j]:+.3f})" for j in idx
                     if (self.contributions[i, j] > 0) == (label == "for") and self.contributions[i, j] != 0]
            lines.append(f"  {label}: " + (", ".join(parts) if parts else "none"))
        lines.append(f"  intercept: {self.intercept[k]:+.3f}")
        res = self.residual_part()
        if res is not None:
            lines.append(f"  residual (not explained by concepts): {res[i]:+.3f}")
        return "\n".join(lines)


def explain(model: Any, X: Any = None, *, activations: Any = None, residual: Any = None,
            target: Target = None, top: int = 5) -> Explanation:
    """Explain a batch of predictions: contributions, top concepts for and against, margin.

    Pass raw embeddings ``X`` or cached ``activations`` (and ``residual`` for hybrid models);
    ``target`` picks the class explained (default: the predicted class).
    """
    A, R = activations_and_residual(model, X, activations, residual)
    Z = model.logits_from_activations(A, R)
    t = target_classes(model, target, Z)
    rows = np.arange(len(A))
    other = Z.copy()
    other[rows, t] = -np.inf
    runner = other.argmax(1) if Z.shape[1] > 1 else t
    C = A * model.coef_[t]
    top = max(0, min(int(top), A.shape[1]))
    order = np.argsort(C, axis=1, kind="stable")
    return Explanation(
        activations=A, logits=Z, residual=R, target=t, runner_up=runner,
        margin=Z[rows, t] - Z[rows, runner], contributions=C,
        top_positive=order[:, ::-1][:, :top], top_negative=order[:, :top],
        coef=np.asarray(model.coef_), intercept=np.asarray(model.intercept_),
        concept_names=model.concept_names_, class_names=model.class_names_,
    )


def explain_one(model: Any, x: Any = None, *, activations: Any = None, residual: Any = None,
                target: int | str | None = None, top: int = 5) -> Explanation:
    """:func:`explain` for one sample given as a 1-D embedding or activation vector."""
    x = None if x is None else np.atleast_2d(np.asarray(x, np.float32))
    a = None if activations is None else np.atleast_2d(np.asarray(activations, np.float32))
    r = None if residual is None else np.atleast_2d(np.asarray(residual, np.float32))
    return explain(model, x, activations=a, residual=r, target=target, top=top)
