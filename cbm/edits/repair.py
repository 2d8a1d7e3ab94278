"""Repairing a suspected confounder without new data: choose an edit on validation data only, and
compare it honestly with the black box, the black box given the same fix, and "never predict k".

:func:`suggest_repairs` previews candidate edits (prune, prune-normalise, refit without the
concept, erase it from the representation; the refits also with the head's training reweighted
so the concept, as the model's own predictor sees it, is independent of the class, and the
erasure also with the concept predictors re-grounded) for a suspected confounder (class ``k``
leaning on concept ``c``) on the training site's *validation* split. Each is scored by the mean
of its validation accuracy and its accuracy on the same images with the concept flipped (the
concept's mean shift in the embedding, added where the predictor is off and removed where it is
on), so an edit that keeps relying on the concept loses. Shifted data is never used.

:func:`compare_baselines` puts the edited model next to the black box, the black box given the
same fix (the concept's LEACE eraser, then the probe refitted) and both models with class ``k``
removed from their outputs, on every split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cbm.edits import Edit, EraseConcept, Prune, PruneNormalize, RefitWithout, TrainingData
from cbm.edits.preview import EvalSet, affected_class, as_evalsets, edited_copy
from cbm.exceptions import EditError
from cbm.explain import class_index, concept_index
from cbm.metrics import independence_weights


def repair_candidates(model: Any, cls: int | str, concept: int | str,
                      data: TrainingData | None = None) -> list[Edit | None]:
    """The edits :func:`suggest_repairs` compares by default (None = leave the model as it is)."""
    k = model.class_names_[class_index(model, cls)]
    c = model.concept_names_[concept_index(model, concept)]
    out: list[Edit | None] = [None, Prune(k, c), PruneNormalize(k, c)]
    if hasattr(model, "refit"):
        out += [RefitWithout(c).using(data), RefitWithout(c, reweight=True).using(data),
                EraseConcept(c, k).using(data), EraseConcept(c, k, reweight=True).using(data),
                EraseConcept(c, k, class_conditional=True).using(data)]
        if data is not None and data.concept_labels is not None:
            out += [EraseConcept(c, k, refit_predictors=True, reweight=True).using(data),
                    EraseConcept(c, k, class_conditional=True, refit_predictors=True, reweight=True).using(data)]
    return out


def suggest_repairs(model: Any, val: EvalSet, cls: int | str, concept: int | str,
                    data: TrainingData | None = None, candidates: Iterable[Edit | None] | None = None,
                    threshold: float = 0.5) -> pd.DataFrame:
    """Candidate repairs of "class ``cls`` leans on concept ``concept``", best first, chosen on
    the validation split ``val`` only.

    Columns: ``edit`` (an Edit, or None for "no edit"), ``name``, ``score`` (the mean of
    ``val_accuracy`` and ``val_flipped``, the choice), ``val_accuracy``, ``val_flipped``
    (accuracy on the concept-flipped validation images), ``val_balanced`` (accuracy with
    :func:`independence_weights` of class and predicted concept), ``val_recall`` and
    ``flipped_recall`` (recall of ``cls``), ``chosen`` (True on the first row). Refitting
    candidates and the concept's shift use ``data`` (else the model directory's ``data.npz``).
    """
    k = class_index(model, cls)
    j = concept_index(model, concept)
    if val.X is None:
        raise EditError(f"Split {val.name!r} has no embeddings; build it with EvalSet.from_model(..., keep_X=True).")
    data = data if data is not None else TrainingData.for_model(model)
    val.sync(model)
    flags = val.activations[:, j] > threshold
    w = independence_weights(val.y, flags)
    X_flip = val.X + np.where(flags[:, None], -1.0, 1.0) * concept_shift(model, data, cls, concept, threshold)
    cands = list(candidates) if candidates is not None else repair_candidates(model, cls, concept, data)
    rows = []
    for edit in cands:
        try:
            m2 = model if edit is None else edited_copy(model, edit)[0]
        except EditError as e:
            rows.append((edit, edit.describe(), np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, str(e)))
            continue
        ok = m2.decision_function(val.X).argmax(1) == val.y
        okf = m2.decision_function(X_flip).argmax(1) == val.y
        is_k = val.y == k
        rows.append((edit, "no edit" if edit is None else edit.describe(), (ok.mean() + okf.mean()) / 2,
                     float(ok.mean()), float(okf.mean()), float((ok * w).sum() / w.sum()),
                     float(ok[is_k].mean()) if is_k.any() else np.nan,
                     float(okf[is_k].mean()) if is_k.any() else np.nan, ""))
    df = pd.DataFrame(rows, columns=["edit", "name", "score", "val_accuracy", "val_flipped", "val_balanced",
                                     "val_recall", "flipped_recall", "error"])
    df = df.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    df["chosen"] = df.index == 0
    return df


def concept_shift(model: Any, data: TrainingData, cls: int | str | None, concept: int | str,
                  threshold: float = 0.5) -> np.ndarray:
    """The concept's mean shift (d,) in the embedding: mean of training images of classes other than
    ``cls`` where the model's predictor of ``concept`` fires, minus where it does not."""
    j = concept_index(model, concept)
    flags = model.transform(data.X)[:, j] > threshold
    keep = np.ones(len(flags), bool) if cls is None else np.asarray(data.y).astype(str) != model.class_names_[
        class_index(model, cls)]
    on, off = flags & keep, ~flags & keep
    if not on.any() or not off.any():
        raise EditError(f"The model's predictor of {model.concept_names_[j]!r} does not split the training images "
                        "of the other classes; its shift cannot be estimated.")
    return (data.X[on].mean(0) - data.X[off].mean(0)).astype(np.float32)


def _predict_split(model: Any, es: EvalSet) -> np.ndarray:
    if es.X is None:
        raise EditError(f"Split {es.name!r} has no embeddings; build it with EvalSet.from_model(..., keep_X=True).")
    return model.decision_function(es.X).argmax(1)


def erase_with(eraser: tuple[np.ndarray, np.ndarray, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Apply a LEACE eraser ``(L, R, bias)`` to embeddings X (N, d)."""
    L, R, mu = eraser
    X = np.asarray(X, np.float32)
    return X - ((X - mu) @ R.T) @ L.T


def compare_baselines(model: Any, edit: Edit | None, evalsets: EvalSet | Mapping[str, EvalSet] | Iterable[EvalSet],
                      black_box: Any, data: TrainingData | None = None, cls: int | str | None = None) -> pd.DataFrame:
    """Accuracy and recall of class ``k`` on every split for: the CBM before and after ``edit``, the
    CBM never predicting ``k``, the black box, the black box never predicting ``k``, and the black
    box given the same fix (the concept's eraser fitted as :class:`~cbm.edits.EraseConcept` does,
    then the probe refitted on the erased training embeddings; needs ``data``).

    Columns: split, model, accuracy, recall. ``k`` is ``cls``, else the class the edit is about.
    """
    sets = as_evalsets(evalsets)
    names = model.class_names_
    kname = names[class_index(model, cls)] if cls is not None else (
        affected_class(model, edit) if edit is not None else None)
    if kname is None:
        raise EditError("compare_baselines needs the class the edit is about: pass cls=.")
    k = names.index(kname)
    m2 = edited_copy(model, edit)[0] if edit is not None else None
    fixed = None
    concept = getattr(edit, "concept", None)
    if concept is not None and data is not None:
        er = ((m2.eraser_left_, m2.eraser_right_, m2.eraser_bias_) if isinstance(edit, EraseConcept)
              else EraseConcept(concept, kname).fit_eraser(model, data))
        fixed = (er, _black_box_with_eraser(black_box, er, data))
    rows = []
    for es in sets:
        y = es.y
        z0 = es.logits(model)
        bb = _class_scores(black_box, es.X, names)
        preds = {"CBM before the edit": z0.argmax(1)}
        if m2 is not None:
            preds["CBM after the edit"] = _predict_split(m2, es)
        preds[f"CBM never predicts {kname}"] = _without(z0, k).argmax(1)
        preds["black box"] = bb.argmax(1)
        preds[f"black box never predicts {kname}"] = _without(bb, k).argmax(1)
        if fixed is not None:
            preds["black box + same fix"] = _class_scores(fixed[1], erase_with(fixed[0], es.X), names).argmax(1)
        for m, p in preds.items():
            rows.append((es.name, m, float((p == y).mean()), float((p[y == k] == k).mean()) if (y == k).any() else np.nan))
    return pd.DataFrame(rows, columns=["split", "model", "accuracy", "recall"])


_SAME_FIX_CACHE: dict[str, Any] = {}


def _black_box_with_eraser(black_box: Any, eraser: tuple[np.ndarray, ...], data: TrainingData) -> Any:
    """The black box refitted on the erased training embeddings; cached by content (black box
    parameters, eraser, data), so previewing edits of the same concept refits it once."""
    import hashlib

    from sklearn.base import clone

    h = hashlib.sha1(repr(sorted(black_box.get_params().items())).encode())
    for a in (*eraser, data.X, np.asarray(data.y).astype(str)):
        h.update(np.ascontiguousarray(a).tobytes())
    key = h.hexdigest()
    if key not in _SAME_FIX_CACHE:
        if len(_SAME_FIX_CACHE) >= 4:
            _SAME_FIX_CACHE.pop(next(iter(_SAME_FIX_CACHE)))
        _SAME_FIX_CACHE[key] = clone(black_box).fit(erase_with(eraser, data.X), data.y)
    return _SAME_FIX_CACHE[key]


def _without(scores: np.ndarray, k: int) -> np.ndarray:
    out = np.array(scores, dtype=np.float64, copy=True)
    out[:, k] = -np.inf
    return out


def _class_scores(estimator: Any, X: np.ndarray | None, names: list[str]) -> np.ndarray:
    """Scores (N, K) of an estimator in ``names`` order (decision_function, else predict_proba)."""
    if X is None:
        raise EditError("Comparing with the black box needs each split's embeddings (keep_X=True).")
    s = estimator.decision_function(X) if hasattr(estimator, "decision_function") else estimator.predict_proba(X)
    s = np.asarray(s)
    order = [[str(c) for c in estimator.classes_].index(n) for n in names]
    return s[:, order]


__all__ = ["compare_baselines", "concept_shift", "erase_with", "independence_weights", "repair_candidates", "suggest_repairs"]
