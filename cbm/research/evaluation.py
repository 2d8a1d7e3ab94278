"""Concept-level evaluation of any concept model against per-image concept annotations.

Accuracy tells whether a CBM predicts the right class; these metrics tell whether its concepts mean
what their names say:

* **Per-concept accuracy and AUC** of the activations ``model.transform(X)`` against annotated labels
  (concepts are matched by name; unannotated concepts are left out). AUC needs no threshold; accuracy
  uses a per-concept threshold fitted on a reference split (the validation split when there is one)
  or given.
* **Concept leakage** (Mahinpei et al., 2021, "Promises and Pitfalls of Black-Box Concept Learning
  Models"; Havasi et al., 2022, "Addressing Leakage in Concept Bottleneck Models"): how much class
  information passes through the bottleneck beyond the concept values. A logistic regression is
  cross-validated on the soft activations and on their thresholded 0/1 values; ``leakage = soft -
  hard`` accuracy. With annotations, ``true`` is the same classifier on the annotated labels.
* **NEC and ANEC** (VLG-CBM), from :mod:`cbm.metrics`.
* **Intervention curves** (:mod:`cbm.research.interventions`).

:func:`evaluate_concepts` evaluates one split; :func:`evaluate_splits` several, sharing thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbm.metrics import accuracy, anec, anec_truncated, nec, roc_auc


@dataclass
class ConceptEvaluation:
    """Concept-level metrics of one model on one split.

    Attributes
    ----------
    concepts : list of str
        The model's concepts that have annotations on this split (M_a of them).
    n, positives : ndarray (M_a,)
        Annotated images and images labelled "present" per concept.
    accuracy, auc, thresholds : ndarray (M_a,)
        Per-concept accuracy at ``thresholds`` and ROC AUC (NaN when only one label occurs).
    leakage : dict or None
        ``soft``, ``hard``, ``leakage`` (soft - hard) and ``true`` cross-validated accuracies.
    task_accuracy, nec : float
    anec : dict str -> float
    interventions : InterventionCurves or None
    """

    method: str
    split: str
    n_samples: int
    n_concepts: int
    concepts: list[str]
    n: np.ndarray
    positives: np.ndarray
    accuracy: np.ndarray
    auc: np.ndarray
    thresholds: np.ndarray
    task_accuracy: float
    nec: float
    anec: dict[str, float]
    leakage: dict[str, float] | None = None
    interventions: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def mean_accuracy(self) -> float:
        """Mean per-concept accuracy over annotated concepts."""
        return float(np.nanmean(self.accuracy)) if len(self.accuracy) and np.isfinite(self.accuracy).any() \
            else float("nan")

    @property
    def mean_auc(self) -> float:
        """Mean per-concept AUC over concepts with both labels present."""
        return float(np.nanmean(self.auc)) if np.isfinite(self.auc).any() else float("nan")

    def table(self) -> Any:
        """Per-concept pandas DataFrame, worst AUC first."""
        import pandas as pd

        df = pd.DataFrame({"concept": self.concepts, "n": self.n, "positives": self.positives,
                           "accuracy": self.accuracy, "auc": self.auc, "threshold": self.thresholds})
        return df.sort_values("auc", na_position="last", kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return to_jsonable({
            "method": self.method, "split": self.split, "n_samples": self.n_samples,
            "n_concepts": self.n_concepts, "n_annotated_concepts": len(self.concepts),
            "task_accuracy": self.task_accuracy, "mean_concept_accuracy": self.mean_accuracy,
            "mean_concept_auc": self.mean_auc, "nec": self.nec, "anec": self.anec, "leakage": self.leakage,
            "per_concept": {c: {"n": int(n), "positives": int(p), "accuracy": float(a), "auc": float(u),
                                "threshold": float(t)}
                            for c, n, p, a, u, t in zip(self.concepts, self.n, self.positives, self.accuracy,
                                                        self.auc, self.thresholds, strict=True)},
            "interventions": None if self.interventions is None else self.interventions.to_dict(),
            "notes": self.notes,
        })

    def summary(self) -> str:
        """A few readable lines for the CLI."""
        lines = [f"concepts on {self.split!r} ({self.method}, {self.n_samples} images): "
                 f"{len(self.concepts)}/{self.n_concepts} concepts annotated"]
        if self.concepts:
            lines.append(f"  concept accuracy {self.mean_accuracy:.3f}, concept AUC {self.mean_auc:.3f} (means)")
            worst = self.table().head(3)
            lines.append("  weakest: " + ", ".join(f"{r.concept} (AUC {r.auc:.2f})" for r in worst.itertuples()
                                                     if np.isfinite(r.auc)))
        if self.leakage:
            lk = self.leakage
            true = f", on annotated labels {lk['true']:.3f}" if lk.get("true") is not None else ""
            lines.append(f"  leakage: class accuracy from soft concepts {lk['soft']:.3f}, from hard (0/1) "
                         f"{lk['hard']:.3f} -> {lk['leakage']:+.3f}{true}")
        an = ", ".join(f"ANEC-{k} {v:.3f}" for k, v in self.anec.items())
        lines.append(f"  task accuracy {self.task_accuracy:.3f}, NEC {self.nec:.2f}" + (f", {an}" if an else ""))
        lines += [f"  note: {n}" for n in self.notes]
        if self.interventions is not None:
            lines.append(self.interventions.summary())
        return "\n".join(lines)

    def figure(self, top: int = 40) -> Any:
        """Plotly bars of per-concept AUC (worst ``top`` first), accuracy in the hover."""
        import plotly.graph_objects as go

        df = self.table().head(top).iloc[::-1]
        fig = go.Figure(go.Bar(
            x=df["auc"], y=df["concept"], orientation="h", marker_color="#0072B2",
            customdata=np.stack([df["accuracy"], df["n"]], axis=1),
            hovertemplate="%{y}<br>AUC %{x:.3f}<br>accuracy %{customdata[0]:.3f}<br>n %{customdata[1]}"
                          "<extra></extra>"))
        fig.add_vline(x=0.5, line_dash="dot", line_color="#999", annotation_text="chance")
        fig.update_layout(title=f"Concept AUC against annotations ({self.split})", xaxis=dict(range=[0, 1]),
                          xaxis_title="AUC of the concept activation", template="plotly_white",
                          height=max(260, 22 * len(df) + 100), margin=dict(l=10, r=10, t=40, b=10))
        return fig


# -- building blocks -------------------------------------------------------------------------------------
def fit_thresholds(A: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-concept cut on activations (N, M) that best separates annotated labels (>= 0.5 = present).

    Concepts without both labels get the median activation.
    """
    A, T = np.asarray(A, np.float64), np.asarray(truth, np.float64)
    out = np.nanmedian(A, axis=0) if len(A) else np.zeros(A.shape[1])
    for j in range(A.shape[1]):
        ok = np.isfinite(T[:, j])
        a, t = A[ok, j], T[ok, j] >= 0.5
        if t.all() or not t.any():
            continue
        order = np.argsort(a, kind="stable")
        a, t = a[order], t[order]
        # cut between a[i-1] and a[i]: below -> absent; correct = negatives below + positives at/above
        neg_below = np.concatenate([[0], np.cumsum(~t)])
        pos_above = t.sum() - np.concatenate([[0], np.cumsum(t)])
        distinct = np.concatenate([[True], a[1:] != a[:-1], [True]])
        correct = np.where(distinct, neg_below + pos_above, -1)
        i = int(np.argmax(correct))
        out[j] = a[0] - 1.0 if i == 0 else a[-1] + 1.0 if i == len(a) else (a[i - 1] + a[i]) / 2
    return out.astype(np.float32)


def concept_agreement(A: np.ndarray, truth: np.ndarray, thresholds: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-concept ``(n, positives, accuracy, auc)`` of activations against labels (NaN = unannotated)."""
    A, T = np.asarray(A, np.float64), np.asarray(truth, np.float64)
    M = A.shape[1]
    n, pos = np.zeros(M, np.int64), np.zeros(M, np.int64)
    acc, auc = np.full(M, np.nan), np.full(M, np.nan)
    for j in range(M):
        ok = np.isfinite(T[:, j])
        if not ok.any():
            continue
        t = T[ok, j] >= 0.5
        n[j], pos[j] = ok.sum(), t.sum()
        acc[j] = float(((A[ok, j] >= thresholds[j]) == t).mean())
        if 0 < pos[j] < n[j]:
            auc[j] = roc_auc(A[ok, j], t)
    return n, pos, acc, auc


def concept_leakage(A: np.ndarray, y: Any, thresholds: np.ndarray, truth: np.ndarray | None = None, *,
                    cv: int = 3, max_samples: int = 4000, random_state: int = 0) -> dict[str, float] | None:
    """Cross-validated class accuracy from soft concept activations vs their 0/1 values.

    ``leakage`` = soft - hard: class information the bottleneck carries beyond "which concepts are
    present". ``true`` uses the annotated labels (unknown = 0.5) instead. None when a class has fewer
    than 2 samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y).astype(str)
    A = np.asarray(A, np.float32)
    if len(y) > max_samples:
        keep = np.random.default_rng(random_state).choice(len(y), max_samples, replace=False)
        A, y, truth = A[keep], y[keep], None if truth is None else np.asarray(truth)[keep]
    _, counts = np.unique(y, return_counts=True)
    folds = int(min(cv, counts.min()))
    if folds < 2 or len(counts) < 2:
        return None
    split = StratifiedKFold(folds, shuffle=True, random_state=random_state)

    def score(F: np.ndarray) -> float:
        from threadpoolctl import threadpool_limits

        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        with threadpool_limits(1):  # small problems: BLAS thread hand-offs cost 5-15x here
            return float(cross_val_score(clf, F, y, cv=split).mean())

    hard = (A >= thresholds).astype(np.float32)
    out = {"soft": score(A), "hard": score(hard)}
    out["leakage"] = out["soft"] - out["hard"]
    if truth is not None and np.isfinite(truth).any():
        T = np.asarray(truth, np.float32)
        T = T[:, np.isfinite(T).any(0)]
        out["true"] = score(np.where(np.isfinite(T), T, 0.5))
    return out


# -- one split, several splits -------------------------------------------------------------------------
def evaluate_concepts(model: Any, X: Any, y: Any, annotations: Any, *, split: str = "test",
                      thresholds: np.ndarray | None = None, anec_k: Sequence[float] = (5,),
                      leakage: bool = True, interventions: Sequence[str] | None = None,
                      random_state: int = 0, train: tuple[Any, Any] | None = None) -> ConceptEvaluation:
    """Concept-level metrics of a fitted model on one split.

    Parameters
    ----------
    annotations : ConceptAnnotations or array (N, M)
        Labels whose rows follow ``X`` (``ann.for_ids(ids)``), matched to the model's concepts by
        name; an array must already be in the model's concept order (NaN = unknown).
    thresholds : array (M,), optional
        Per-concept cuts in the model's concept order; default fitted on this split (optimistic:
        pass thresholds fitted on a validation split, as :func:`evaluate_splits` does).
    interventions : sequence of policy names, optional
        Also compute intervention curves (:func:`cbm.research.interventions.intervention_curves`).
    train : (X_train, y_train), optional
        The training split: ANEC is then VLG-CBM's (a final layer refitted along a sparsity path);
        without it the model's own head is truncated (``anec_truncated``) and a note says so.
    """
    names = model.concept_names_
    A = model.transform(X)
    R = model.residual_logits(X) if getattr(model, "hybrid", False) else None
    T, cost = _truth(annotations, names, len(A))
    y = np.asarray(y)
    pred = model.classes_[model.logits_from_activations(A, R).argmax(1)]
    notes = []
    if thresholds is None:
        thresholds = fit_thresholds(A, T)
        if np.isfinite(T).any():
            notes.append(f"thresholds fitted on {split!r} itself (no validation split given)")
    cols = np.flatnonzero(np.isfinite(T).any(0))
    n, pos, acc, auc = concept_agreement(A[:, cols], T[:, cols], np.asarray(thresholds)[cols])
    if not len(cols):
        notes.append("no concept of the model has annotations (names did not match)")
    leak = concept_leakage(A, y, thresholds, T if len(cols) else None, random_state=random_state) \
        if leakage else None
    curves = None
    if interventions and len(cols):
        from cbm.research.interventions import intervention_curves

        curves = intervention_curves(model, y=y, truth=T, activations=A, residual=R, policies=interventions,
                                     cost=cost, thresholds=thresholds, random_state=random_state)
    if train is not None:  # VLG-CBM's ANEC: a final layer refitted on the training split
        anec_scores = {str(k): anec(model, X, y, k, train=train) for k in anec_k}
    else:
        anec_scores = {str(k): anec_truncated(model, X, y, k) for k in anec_k}
        if anec_k:
            notes.append("ANEC truncates the model's own head (no training split given to refit it)")
    return ConceptEvaluation(
        method=getattr(model, "method", type(model).__name__), split=split, n_samples=len(A),
        n_concepts=len(names), concepts=[names[j] for j in cols], n=n, positives=pos, accuracy=acc, auc=auc,
        thresholds=np.asarray(thresholds, np.float32)[cols], task_accuracy=accuracy(y.astype(str), pred.astype(str)),
        nec=nec(model.coef_), anec=anec_scores, leakage=leak,
        interventions=curves, notes=notes)


def evaluate_splits(model: Any, splits: Mapping[str, Mapping[str, Any]], annotations: Mapping[str, Any], *,
                    reference: str | None = "val", **kwargs: Any) -> dict[str, ConceptEvaluation]:
    """:func:`evaluate_concepts` on each split that has annotations (``annotations[name]``).

    Thresholds are fitted once on the ``reference`` split (when present and annotated) and used
    for every other split, which is then evaluated on data it was not tuned on.
    """
    thresholds = None
    if reference in splits and reference in annotations:
        T, _ = _truth(annotations[reference], model.concept_names_, len(splits[reference]["y"]))
        thresholds = fit_thresholds(model.transform(splits[reference]["X"]), T)
    out = {}
    for name, split in splits.items():
        if name not in annotations:
            continue
        out[name] = evaluate_concepts(model, split["X"], split["y"], annotations[name], split=name,
                                      thresholds=thresholds, **kwargs)
        if name == reference and thresholds is not None:
            out[name].notes.append(f"thresholds fitted on {name!r} (the reference split) and used for the others")
    return out


def stored_annotations(model: Any, splits: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-split :class:`~cbm.research.annotations.ConceptAnnotations` from labels stored with the data.

    ``concepts`` arrays (N, M) are named by the bank the model was trained with (``model.concepts``,
    else ``base_concepts_``). Splits without them are left out.
    """
    from cbm.research.annotations import from_array

    bank = getattr(model, "concepts", None)
    names = list(bank.names) if hasattr(bank, "names") else (
        list(model.base_concepts_.names) if hasattr(model, "base_concepts_") else None)
    out = {}
    for name, split in splits.items():
        ids = split.get("ids")
        if split.get("concepts") is not None:
            labels = np.asarray(split["concepts"])
            if names is None or len(names) != labels.shape[1]:
                raise ValueError(f"The data's concept labels (concepts_{name}) have {labels.shape[1]} columns "
                                 "but no concept bank of that size names them; give annotations with concept "
                                 "names instead (a .csv/.parquet with image_id, concept, value).")
            out[name] = from_array(labels, names, ids, source="data")
    return out


def _truth(annotations: Any, names: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(annotations, "matrix_for"):
        T, cost = annotations.matrix_for(names), annotations.cost_for(names)
    else:
        T, cost = np.asarray(annotations, np.float32), None
    if T.shape != (n, len(names)):
        raise ValueError(f"Concept annotations have shape {T.shape}; expected ({n}, {len(names)}): one row "
                         "per sample (use annotations.for_ids(ids)) in the model's concept order.")
    return T, cost


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays turned into plain Python (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


__all__ = ["ConceptEvaluation", "concept_agreement", "concept_leakage", "evaluate_concepts", "evaluate_splits",
           "fit_thresholds", "roc_auc", "stored_annotations"]


def __getattr__(name: str) -> Any:
    """Point the old name of :func:`concept_agreement` at it (``concept_scores`` is the kernels' word)."""
    if name == "concept_scores":
        raise AttributeError("cbm.research.evaluation.concept_scores is now concept_agreement (per-concept n, "
                             "positives, accuracy and AUC against labels); cbm.kernels.concept_scores scores images.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
