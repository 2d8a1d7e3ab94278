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
PCBM, dense head), and with KnoBo when its concepts are grounded once for every finding: on
per-image concept labels (``fit(X, Y, concept_labels=...)``) or, without them, on labels derived
from a bank prior over the findings (a concept is positive where a finding it belongs to is
present); that prior also becomes each finding's absent/present head prior. The per-finding models must end with the same concepts and activations
(checked at fit time); LaBo learns its concept layer from the labels and is not suited.

Saved with :func:`cbm.io.save_model` like any model: the shared concept layer (the first
finding's model) with the finding weights ``coef_`` as its head, so editing, versions and
:func:`cbm.io.load_model` work unchanged and a loaded model predicts exactly as the saved one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

from cbm.metrics import roc_auc
from cbm.models._base import BaseConceptModel

__all__ = ["PRESENT_THRESHOLD", "MultiLabelCBM", "check_indicator", "finding_metrics", "finding_probabilities",
           "finding_report", "format_finding_metrics"]

#: A finding is called present when its probability is at least this (the default of
#: :meth:`MultiLabelCBM.predict`, ``cbm predict``'s ``findings`` column and ``cbm explain``).
PRESENT_THRESHOLD = 0.5


def check_indicator(Y: Any, names: Sequence[str] | None = None) -> np.ndarray:
    """``Y`` as an (N, L) int8 0/1 matrix; a ValueError names the problem (and the finding)."""
    arr = np.asarray(Y)
    if arr.ndim != 2:
        raise ValueError(f"Multi-label targets must be a binary indicator matrix (n_samples, "
                         f"n_findings); got shape {arr.shape}. Use sklearn's MultiLabelBinarizer.")
    if arr.shape[1] == 0:
        raise ValueError(f"Multi-label targets have no finding columns (shape {arr.shape}); give one 0/1 "
                         "column per finding.")
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

    def fit(self, X: Any, Y: Any, **fit_params: Any) -> MultiLabelCBM:
        """Fit on embeddings ``X`` (N, d) and indicator matrix ``Y`` (N, L). Returns self.

        ``fit_params`` go to every finding's model; ``y_val`` (an indicator matrix like ``Y``) is
        passed one column per finding, and ``concept_labels`` (N, M) as they are.
        """
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
        y_val = fit_params.pop("y_val", None)
        if y_val is not None:
            y_val = check_indicator(np.asarray(y_val), names) if np.ndim(y_val) == 2 else None
            if y_val is None:
                fit_params.pop("X_val", None)
        if "concept_labels" not in fit_params and (L := _prior_concept_labels(base, Yb, names)) is not None:
            fit_params["concept_labels"] = L
        self.estimators_ = []
        for j in range(Yb.shape[1]):
            est = _for_finding(clone(base), j if names is None else names[j])
            extra = dict(fit_params, **({} if y_val is None else {"y_val": y_val[:, j]}))
            self.estimators_.append(est.fit(X, Yb[:, j], **extra))
        first = self.estimators_[0]
        probe = np.asarray(X[: min(len(X), 32)], np.float32)
        A0 = first.transform(probe)
        for j, est in enumerate(self.estimators_[1:], 1):
            if est.concept_names_ != first.concept_names_ or not np.allclose(
                    est.transform(probe), A0, atol=1e-4):
                hint = (" For KnoBo, ground the concepts on per-image concept labels "
                        "(fit(..., concept_labels=...); concepts_train in a cbm train .npz)."
                        if getattr(base, "method", "") == "knobo" else "")
                raise ValueError(f"{type(base).__name__} learns its concept layer from the labels (the "
                                 f"model for finding {j} has other concepts); use a method with a "
                                 f"fixed concept layer (linear-probe, pcbm, dense-head).{hint}")
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
    def method(self) -> str:
        """The method of the per-finding models (``pcbm``, ``knobo``, ...)."""
        base = self.estimators_[0] if hasattr(self, "estimators_") else self.estimator
        return getattr(base, "method", "linear-probe")

    @property
    def concept_model_(self) -> Any:
        """The model whose concept layer every finding shares (the first finding's)."""
        self._check_fitted()
        return self.estimators_[0]

    @property
    def base_concepts_(self) -> Any:
        """The concept bank the shared concept layer was fitted with."""
        return self.concept_model_.base_concepts_

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {k[6:]: v for k, v in self.concept_model_.state_tensors().items() if k.startswith("extra.")}

    def state_tensors(self) -> dict[str, np.ndarray]:
        """The shared concept layer's learned state, with the finding weights as its head."""
        return {**self.concept_model_.state_tensors(), "coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_concept_model(cls, model: Any) -> MultiLabelCBM:
        """Wrap a concept model whose head rows are findings (what :meth:`state_tensors` saves);
        used by :func:`cbm.io.load_model`."""
        out = cls(estimator=clone(model), finding_names=list(model.class_names_))
        out.estimators_ = [model]
        out.coef_ = np.asarray(model.coef_, np.float32)
        out.intercept_ = np.asarray(model.intercept_, np.float32)
        out.classes_ = np.asarray(model.class_names_)
        out.n_features_in_ = model.n_features_in_
        out.concepts_ = model.concepts_
        return out

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

    #: the finding weights and intercepts: what edits change and undo restores
    HEAD_ATTRIBUTES = ("coef_", "intercept_", "concepts_")
    head_state = BaseConceptModel.head_state
    set_head_state = BaseConceptModel.set_head_state

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

    def predict(self, X: Any, threshold: float = PRESENT_THRESHOLD) -> np.ndarray:
        """Indicator matrix (N, L) of findings with probability >= ``threshold``."""
        return (self.predict_proba(X) >= threshold).astype(np.int8)


def finding_probabilities(model: Any, activations: Any) -> np.ndarray:
    """Probability of each finding (N, L) from concept activations (N, M): a sigmoid of each finding's score.

    The same numbers as ``model.predict_proba(X)`` for ``activations = model.transform(X)``, so a
    caller that keeps activations (the app, an intervention) need not embed again.
    """
    A = np.atleast_2d(np.asarray(activations, np.float32))
    z = np.clip(np.asarray(model.logits_from_activations(A), np.float64), -60, 60)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _prior_concept_labels(est: Any, Y: np.ndarray, names: list[str] | None) -> np.ndarray | None:
    """Per-image concept labels (N, M) from a bank prior over the findings, for methods that ground
    concepts on labels (KnoBo): 1 where a present finding has the concept (+1), 0 where none does
    but some finding could, or a present finding excludes it (-1), -1 (unused) otherwise."""
    bank = getattr(est, "concepts", None)
    takes_labels = "concept_labels" in getattr(est, "fit_param_names", set)()
    if (bank is None or bank.prior is None or bank.classes is None or names is None
            or not all(n in bank.classes for n in names) or not takes_labels):
        return None
    P = np.asarray(bank.prior[[bank.classes.index(n) for n in names]], np.float32)
    pos, excluded = (Y @ (P > 0)) > 0, (Y @ (P < 0)) > 0
    linked = (P > 0).any(0)[None, :]
    return np.where(pos, 1, np.where(linked | excluded, 0, -1)).astype(np.int8)


def _for_finding(est: Any, finding: Any) -> Any:
    """``est`` with a bank prior over the findings turned into this finding's absent/present prior
    (rows for the binary labels 0 and 1), so prior-reading methods (KnoBo) fit one finding."""
    bank = getattr(est, "concepts", None)
    if bank is None or bank.prior is None or bank.classes is None or str(finding) not in bank.classes:
        return est
    row = np.asarray(bank.prior[bank.classes.index(str(finding))], np.float32)
    return est.set_params(concepts=bank.with_prior(["0", "1"], np.stack([np.zeros_like(row), row])))


def finding_report(Y_true: Any, proba: Any, names: Sequence[str] | None = None,
                   specificity: float = 0.9) -> pd.DataFrame:
    """Per finding: positives, AUROC, average precision and sensitivity at ``specificity``.

    A finding with only positives or only negatives in ``Y_true`` gets NaN for the ranking metrics.
    """
    from sklearn.metrics import average_precision_score, roc_curve

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
        rows.append((name, int(y.sum()), len(y), roc_auc(p, y),
                     float(average_precision_score(y, p)), float(tpr[ok].max())))
    return pd.DataFrame(rows, columns=["finding", "n_positive", "n", "auroc", "average_precision",
                                       f"sensitivity_at_{specificity:g}_specificity"])


def finding_metrics(model: Any, splits: dict[str, dict[str, Any]], specificity: float = 0.9) -> dict[str, Any]:
    """:func:`finding_report` of a multi-label model on named splits ``{name: {"X", "y"}}`` as a
    JSON-ready dict: ``{"method", "multilabel", "specificity", "splits": {name: {"n",
    "mean_auroc", "findings": {finding: {"n_positive", "auroc", "average_precision",
    "sensitivity"}}}}}`` (NaN where a split lacks positives or negatives of a finding)."""
    names = model.class_names_
    out: dict[str, Any] = {"method": model.method, "multilabel": True, "specificity": specificity,
                           "splits": {}}
    for split, data in splits.items():
        Y = np.asarray(data["y"])
        if Y.ndim != 2 or Y.shape[1] != len(names):
            raise ValueError(f"Split {split!r} has labels of shape {Y.shape}; the model has "
                             f"{len(names)} findings {names[:10]}; give an indicator matrix (N, {len(names)}).")
        df = finding_report(Y, model.predict_proba(np.asarray(data["X"], np.float32)), names, specificity)
        df = df.rename(columns={df.columns[-1]: "sensitivity"})
        out["splits"][split] = {
            "n": int(len(Y)), "mean_auroc": float(np.nanmean(df["auroc"])) if df["auroc"].notna().any()
            else float("nan"),
            "findings": {r["finding"]: {k: (int(r[k]) if k == "n_positive" else float(r[k]))
                                        for k in ("n_positive", "auroc", "average_precision", "sensitivity")}
                         for r in df.to_dict("records")}}
    return out


def format_finding_metrics(rep: dict[str, Any]) -> str:
    """A plain-text table of :func:`finding_metrics` (one row per split and finding), for the CLI."""
    sens = f"sens@{rep['specificity']:g}spec"
    rows = [("split", "finding", "n", "positives", "AUROC", "AP", sens)]
    for split, s in rep["splits"].items():
        for name, f in s["findings"].items():
            rows.append((split, name, str(s["n"]), str(f["n_positive"]), f"{f['auroc']:.3f}",
                         f"{f['average_precision']:.3f}", f"{f['sensitivity']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n\n{rep['method']} (multi-label): one sigmoid per finding"
