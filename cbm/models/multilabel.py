"""Multi-label findings: one sigmoid output per finding on a shared concept layer.

A chest X-ray can show effusion and cardiomegaly at once. :class:`MultiLabelCBM` takes a binary
indicator matrix ``Y`` (N, L) -- scikit-learn's multi-label convention, e.g. the output of
``MultiLabelBinarizer`` -- and fits one binary copy of a concept model per finding. For a
two-class softmax head the probability of the positive class is ``sigmoid(z1 - z0)``, so each
finding gets one row of weights ``coef_[j] = W1 - W0`` on the concepts and one sigmoid output::

    model = MultiLabelCBM(create_model("pcbm", concepts=bank), finding_names=mlb.classes_)
    model.fit(X, mlb.fit_transform(findings))       # findings: list of label lists per image
    model.predict_proba(X)                          # (N, L), each column a sigmoid
    contributions(model, model.transform(X), target="effusion")   # cbm.explain, per finding
    finding_report(Y_test, model.predict_proba(X_test), model.class_names_)  # AUROC, AP, sens.
    Prune("effusion", "rib").apply(model)           # cbm.edits weight edits act per finding

Works with every method whose concept activations do not depend on the labels (linear probe,
PCBM, dense head). The per-finding models must end with the same concepts and activations
(checked at fit time); KnoBo and LaBo learn their concept layer from the labels and are not suited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

__all__ = ["MultiLabelCBM", "check_indicator", "finding_report"]


def check_indicator(Y: Any, names: Sequence[str] | None = None) -> np.ndarray:
    """``Y`` as an (N, L) int8 0/1 matrix; a ValueError names the problem (and the finding)."""
    arr = np.asarray(Y)
    if arr.ndim != 2:
        raise ValueError(f"Multi-label targets must be a binary indicator matrix (n_samples, "
                         f"n_findings); got shape {arr.shape}. Use sklearn's MultiLabelBinarizer.")
    if arr.size and not np.isin(arr, (0, 1, True, False)).all():
        bad = arr[~np.isin(arr, (0, 1, True, False))].ravel()[0].item()
        raise ValueError(f"Multi-label targets must be 0 or 1; found {bad!r}.")
    arr = arr.astype(np.int8)
    names = [str(n) for n in names] if names is not None else [str(j) for j in range(arr.shape[1])]
    for j, name in enumerate(names):
        if arr[:, j].min() == arr[:, j].max():
            raise ValueError(f"Finding {name!r} is {'present' if arr[0, j] else 'absent'} in every "
                             "training sample; a finding needs positive and negative examples.")
    return arr


class MultiLabelCBM(BaseEstimator):
    """One binary concept model per finding on a shared concept layer (sigmoid per finding).

    Parameters
    ----------
    estimator : BaseConceptModel
        The concept model fitted once per finding (default: a linear probe).
    finding_names : sequence of str, optional
        Names of the L columns of ``Y`` (default "0", "1", ...).

    Attributes
    ----------
    estimators_ : list of fitted models, one per finding
    coef_ : ndarray (L, M)
        Weight of each concept for each finding's logit.
    intercept_ : ndarray (L,)
    classes_ : ndarray of str
        The finding names (``class_names_``), so :mod:`cbm.explain` explains a finding by name.
    """

    hybrid = False
    multilabel_ = True

    def __init__(self, estimator: Any = None, finding_names: Sequence[str] | None = None) -> None:
        self.estimator = estimator
        self.finding_names = finding_names

    def fit(self, X: Any, Y: Any) -> MultiLabelCBM:
        """Fit on embeddings ``X`` (N, d) and indicator matrix ``Y`` (N, L). Returns self."""
        if self.estimator is None:
            from cbm.models.baselines import LinearProbe

            base = LinearProbe()
        else:
            base = self.estimator
        names = None if self.finding_names is None else [str(n) for n in self.finding_names]
        Yb = np.asarray(Y)
        if names is not None and Yb.ndim == 2 and len(names) != Yb.shape[1]:
            raise ValueError(f"finding_names has {len(names)} names but Y has {Yb.shape[1]} columns.")
        Yb = check_indicator(Yb, names)
        if len(Yb) != len(X):
            raise ValueError(f"X has {len(X)} samples but Y has {len(Yb)} rows.")
        if getattr(base, "hybrid", False):
            raise ValueError("MultiLabelCBM needs a pure concept model; hybrid models (pcbm-h) have a "
                             "residual that no concept explains.")
        self.estimators_ = [clone(base).fit(X, Yb[:, j]) for j in range(Yb.shape[1])]
        first = self.estimators_[0]
        probe = np.asarray(X[: min(len(X), 32)], np.float32)
        A0 = first.transform(probe)
        for j, est in enumerate(self.estimators_[1:], 1):
            if est.concept_names_ != first.concept_names_ or not np.allclose(
                    est.transform(probe), A0, atol=1e-4):
                raise ValueError(f"{type(base).__name__} learns its concept layer from the labels (the "
                                 f"model for finding {j} has other concepts); use a method with a "
                                 "fixed concept layer (linear-probe, pcbm, dense-head).")
        rows = [self._binary_row(est) for est in self.estimators_]
        self.coef_ = np.stack([r[0] for r in rows]).astype(np.float32)
        self.intercept_ = np.asarray([r[1] for r in rows], np.float32)
        self.classes_ = np.asarray(names if names is not None else [str(j) for j in range(len(rows))])
        self.n_features_in_ = first.n_features_in_
        self.concepts_ = first.concepts_
        return self

    @staticmethod
    def _binary_row(est: Any) -> tuple[np.ndarray, float]:
        """(weights, intercept) of the positive class's logit against the negative one."""
        W, b = np.asarray(est.coef_, np.float32), np.asarray(est.intercept_, np.float32)
        pos = list(est.classes_).index(1)
        if len(W) == 1:
            return (W[0], float(b[0])) if pos == 1 else (-W[0], -float(b[0]))
        return W[pos] - W[1 - pos], float(b[pos] - b[1 - pos])

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("This MultiLabelCBM is not fitted yet; call fit(X, Y) first.")

    @property
    def concept_names_(self) -> list[str]:
        self._check_fitted()
        return list(self.estimators_[0].concept_names_)

    @property
    def class_names_(self) -> list[str]:
        self._check_fitted()
        return [str(c) for c in self.classes_]

    def transform(self, X: Any) -> np.ndarray:
        """Concept activations (N, M), shared by every finding."""
        self._check_fitted()
        return self.estimators_[0].transform(X)

    def logits_from_activations(self, A: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        """Finding logits (N, L) from concept activations."""
        self._check_fitted()
        out = np.asarray(A, np.float32) @ self.coef_.T + self.intercept_
        return out if residual is None else out + residual

    def remove_concept(self, j: int) -> None:
        """Not supported: prune the concept for every finding instead (``Prune(None, concept)``)."""
        from cbm.exceptions import EditError

        raise EditError("Removing a concept from a multi-label model is not supported; prune it for "
                        "every finding instead (Prune(None, concept) sets its weights to zero).")

    add_concept = remove_concept

    def residual_logits(self, X: Any) -> np.ndarray:
        """Zeros (N, L): multi-label models are pure concept models."""
        return np.zeros((len(X), len(self.classes_)), np.float32)

    def decision_function(self, X: Any) -> np.ndarray:
        """Finding logits (N, L)."""
        return self.logits_from_activations(self.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each finding (N, L): a sigmoid per column (rows need not sum to 1)."""
        z = np.clip(self.decision_function(X).astype(np.float64), -60, 60)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        """Indicator matrix (N, L) of findings with probability >= ``threshold``."""
        return (self.predict_proba(X) >= threshold).astype(np.int8)


def finding_report(Y_true: Any, proba: Any, names: Sequence[str] | None = None,
                   specificity: float = 0.9) -> pd.DataFrame:
    """Per finding: positives, AUROC, average precision and sensitivity at ``specificity``.

    A finding with only positives or only negatives in ``Y_true`` gets NaN for the ranking metrics.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    if not 0 < specificity < 1:
        raise ValueError(f"specificity must be between 0 and 1; got {specificity!r}.")
    Y = np.asarray(Y_true).astype(np.int8)
    P = np.asarray(proba, np.float64)
    if Y.shape != P.shape or Y.ndim != 2:
        raise ValueError(f"Y_true {Y.shape} and proba {P.shape} must both be (n_samples, n_findings).")
    names = [str(n) for n in names] if names is not None else [str(j) for j in range(Y.shape[1])]
    rows = []
    for j, name in enumerate(names):
        y, p = Y[:, j], P[:, j]
        if y.min() == y.max():
            rows.append((name, int(y.sum()), len(y), np.nan, np.nan, np.nan))
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ok = fpr <= 1 - specificity + 1e-12
        rows.append((name, int(y.sum()), len(y), float(roc_auc_score(y, p)),
                     float(average_precision_score(y, p)), float(tpr[ok].max())))
    return pd.DataFrame(rows, columns=["finding", "n_positive", "n", "auroc", "average_precision",
                                       f"sensitivity_at_{specificity:g}_specificity"])
