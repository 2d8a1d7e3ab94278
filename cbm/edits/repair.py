"""Repairing a suspected confounder without new data: choose an edit on validation data only, and
compare it honestly with the black box, the black box given the same fix, and "never predict k".

:func:`suggest_repairs` previews candidate edits (prune, prune-normalise, refit without the
concept, erase it from the representation; the refits also with the head's training reweighted
so the concept, as the model's own predictor sees it, is independent of the class, and the
erasure also with the concept predictors re-grounded) for a suspected confounder (class ``k``
leaning on concept ``c``) on the training site's *validation* split. Each is scored by its
group-balanced accuracy: every class counts its images with and without the concept (as the
model's own predictor sees it) equally, an estimate of accuracy where concept and class are
independent. An edit is chosen only when a paired bootstrap shows it beats "no edit" beyond the
noise; otherwise the model is left as it is. Shifted data is never used.

:func:`compare_baselines` puts the edited model next to the black box, the black box given the
same fix (the concept's LEACE eraser, then the probe refitted) and both models with class ``k``
removed from their outputs, on every split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cbm.edits import (
    Edit,
    EraseConcept,
    NeutraliseAtSource,
    Prune,
    PruneNormalize,
    RefitWithout,
    TrainingData,
)
from cbm.edits.preview import EvalSet, affected_class, as_evalsets, edited_copy
from cbm.exceptions import EditError
from cbm.explain import class_index, concept_index
from cbm.metrics import independence_weights


def repair_candidates(model: Any, cls: int | str, concept: int | str,
                      data: TrainingData | None = None, images: Mapping[str, Any] | None = None,
                      encoder: Any = None, cache_dir: Any = None) -> list[Edit | None]:
    """The edits :func:`suggest_repairs` compares by default (None = leave the model as it is).

    With ``images`` (split name -> that split's images, in its order; the validation split at
    least) the concept neutralised at the source (:class:`~cbm.edits.NeutraliseAtSource`) is a
    candidate too, embedded with ``encoder`` (default: the model's recorded encoder; repaired
    embeddings kept in ``cache_dir`` when given); with the training images too (split "train"), also
    with the head refitted on them repaired.
    """
    k = model.class_names_[class_index(model, cls)]
    c = model.concept_names_[concept_index(model, concept)]
    out: list[Edit | None] = [None, Prune(k, c), PruneNormalize(k, c)]
    if images is not None:
        if encoder is None:
            from cbm.encoders.rebuild import encoder_for

            encoder = encoder_for(model)
        out.append(NeutraliseAtSource(c).using(images, encoder, cache_dir=cache_dir))
        if "train" in images and hasattr(model, "refit"):  # and the head refitted on repaired training images
            out.append(NeutraliseAtSource(c, refit=True).using(images, encoder, data, cache_dir=cache_dir))
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
                    threshold: float = 0.5, n_boot: int = 500, confidence: float = 0.9,
                    random_state: int = 0, progress: Callable[[int, int, str], None] | None = None
                    ) -> pd.DataFrame:
    """Candidate repairs of "class ``cls`` leans on concept ``concept``", chosen on the validation
    split ``val`` only, the chosen row first.

    Each candidate is scored by its **group-balanced accuracy**: the images of each class are split
    by the concept as the model's own predictor sees it (activation > ``threshold``), and each class
    counts its images with and without the concept equally, as if the concept were independent of
    the class (the estimate of DFR's group-balanced validation, Kirichenko et al. 2023).
    ``worst_group`` is the lowest accuracy of a (class, concept) cell with at least 5 images
    (GroupDRO's criterion, Sagawa et al. 2020). The uncertainty comes from ``n_boot`` paired
    bootstrap resamples of the validation images: ``gain_low`` is the lower ``confidence``
    bound of the gain over "no edit". An edit is chosen only when ``gain_low > 0`` (it helps beyond
    the noise); otherwise "no edit" is chosen.

    Columns: ``edit`` (an Edit, or None for "no edit"), ``name``, ``score``, ``score_se``, ``gain``,
    ``gain_low``, ``worst_group``, ``val_accuracy``, ``val_recall`` (recall of ``cls``), ``error``,
    ``chosen``. Refitting candidates use ``data`` (else the model directory's ``data.npz``).
    ``progress(i, n, name)`` is called before each candidate is previewed.
    """
    k = class_index(model, cls)
    j = concept_index(model, concept)
    if val.X is None:
        raise EditError(f"Split {val.name!r} has no embeddings; build it with EvalSet.from_model(..., keep_X=True).")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    if candidates is None and data is None:
        data = TrainingData.for_model(model)
    val.sync(model)
    y = np.asarray(val.y)
    flags = val.activations[:, j] > threshold
    cells = y * 2 + flags.astype(int)
    resamples = np.random.default_rng(random_state).integers(0, len(y), size=(n_boot, len(y)))
    cands = list(candidates) if candidates is not None else repair_candidates(model, cls, concept, data)
    rows, hits = [], []
    for i, edit in enumerate(cands):
        name = "no edit" if edit is None else edit.describe()
        if progress is not None:
            progress(i, len(cands), name)
        try:
            m2 = model if edit is None else edited_copy(model, edit)[0]
        except EditError as e:
            rows.append({"edit": edit, "name": name, "error": str(e)})
            hits.append(None)
            continue
        Xv = edit.embeddings(model, val.name) if getattr(edit, "source_level", False) else val.X  # re-embedded
        ok = _scores(m2, Xv).argmax(1) == y
        is_k = y == k
        rows.append({"edit": edit, "name": name, "score": group_balanced_accuracy(ok, y, flags),
                     "worst_group": worst_group_accuracy(ok, y, flags), "val_accuracy": float(ok.mean()),
                     "val_recall": float(ok[is_k].mean()) if is_k.any() else np.nan, "error": ""})
        hits.append(_resampled_balanced(ok, cells, resamples, 2 * len(model.class_names_)))
    if progress is not None:
        progress(len(cands), len(cands), "done")
    df = pd.DataFrame(rows, columns=["edit", "name", "score", "score_se", "gain", "gain_low", "worst_group",
                                     "val_accuracy", "val_recall", "error"])
    base = next((h for e, h in zip(cands, hits, strict=True) if e is None and h is not None), None)
    base_score = df.loc[[e is None for e in cands], "score"]
    base_score = float(base_score.iloc[0]) if len(base_score) else np.nan
    alpha = 1 - confidence
    for i, h in enumerate(hits):
        if h is None:
            continue
        df.loc[i, "score_se"] = float(np.nanstd(h))
        if base is not None:
            diff = h - base
            df.loc[i, "gain"] = df.loc[i, "score"] - base_score
            df.loc[i, "gain_low"] = float(np.nanquantile(diff, alpha)) if cands[i] is not None else 0.0
    ok_rows = df["gain_low"].fillna(-np.inf) > 0
    chosen = df.index[ok_rows][df.loc[ok_rows, "score"].argmax()] if ok_rows.any() else (
        df.index[[e is None for e in cands]][0] if any(e is None for e in cands) else None)
    df["chosen"] = df.index == chosen
    return df.sort_values(["chosen", "score"], ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def group_balanced_accuracy(correct: np.ndarray, y: np.ndarray, flags: np.ndarray) -> float:
    """Accuracy with each class's images with and without the concept counted equally (mean over classes)."""
    per_class = []
    for c in np.unique(y):
        cells = [correct[(y == c) & (flags == f)] for f in (False, True)]
        per_class.append(np.mean([cell.mean() for cell in cells if len(cell)]))
    return float(np.mean(per_class))


def worst_group_accuracy(correct: np.ndarray, y: np.ndarray, flags: np.ndarray, min_size: int = 5) -> float:
    """The lowest accuracy of a (class, concept on/off) cell with at least ``min_size`` images."""
    accs = [correct[cell].mean() for c in np.unique(y) for f in (False, True)
            if (cell := (y == c) & (flags == f)).sum() >= min_size]
    return float(min(accs)) if accs else np.nan


def _resampled_balanced(correct: np.ndarray, cells: np.ndarray, resamples: np.ndarray, n_cells: int) -> np.ndarray:
    """:func:`group_balanced_accuracy` on each bootstrap resample (rows of ``resamples``), (B,)."""
    B = len(resamples)
    flat = (cells[resamples] + n_cells * np.arange(B)[:, None]).ravel()
    counts = np.bincount(flat, minlength=B * n_cells).reshape(B, n_cells).astype(float)
    right = np.bincount(flat, weights=correct[resamples].ravel().astype(float),
                        minlength=B * n_cells).reshape(B, n_cells)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty cells and absent classes are NaN
        acc = (right / counts).reshape(B, n_cells // 2, 2)
        return np.nanmean(np.nanmean(acc, axis=2), axis=1)


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
        raise EditError(f"The model's predictor of {model.concept_names_[j]!r} fires on {flags[keep].mean():.0%} of "
                        f"the {int(keep.sum())} training images of the other classes (threshold {threshold}), so "
                        "it does not split them and the concept's shift cannot be estimated. Check the concept "
                        "with model.transform(X) on images that show it; a concept added from examples must be "
                        "fitted for the model: AddConcept.from_examples(..., model=model).")
    return (data.X[on].mean(0) - data.X[off].mean(0)).astype(np.float32)


def _predict_split(model: Any, es: EvalSet) -> np.ndarray:
    if es.X is None:
        raise EditError(f"Split {es.name!r} has no embeddings; build it with EvalSet.from_model(..., keep_X=True).")
    return _scores(model, es.X).argmax(1)


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
    then the probe refitted on the erased training embeddings; needs ``data``; for a source repair,
    the black box scores the same repaired images).

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
    at_source = getattr(edit, "source_level", False)  # the same fix for the black box: its repaired images
    if concept is not None and data is not None and not at_source:
        er = ((m2.eraser_left_, m2.eraser_right_, m2.eraser_bias_) if isinstance(edit, EraseConcept)
              else EraseConcept(concept, kname).fit_eraser(model, data))
        fixed = (er, _black_box_with_eraser(black_box, er, data))
    same_source_fix = black_box
    if at_source and getattr(edit, "refit", False):  # the black box refitted on the same repaired images
        from sklearn.base import clone

        same_source_fix = clone(black_box).fit(edit.embeddings(model, "train"), edit.data_for(model).y)
    rows = []
    for es in sets:
        y = es.y
        z0 = es.logits(model)
        bb = _class_scores(black_box, es.X, names)
        preds = {"CBM before the edit": z0.argmax(1)}
        X_fixed = edit.embeddings(model, es.name) if at_source else None
        if m2 is not None:
            preds["CBM after the edit"] = _scores(m2, X_fixed).argmax(1) if at_source else _predict_split(m2, es)
        preds[f"CBM never predicts {kname}"] = _without(z0, k).argmax(1)
        preds["black box"] = bb.argmax(1)
        preds[f"black box never predicts {kname}"] = _without(bb, k).argmax(1)
        if at_source:
            preds["black box + same fix"] = _class_scores(same_source_fix, X_fixed, names).argmax(1)
        elif fixed is not None:
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


def _scores(model: Any, X: np.ndarray) -> np.ndarray:
    """``decision_function`` as (N, K) scores; a binary model's (N,) margins become ``[-m/2, m/2]``."""
    s = np.asarray(model.decision_function(X))
    return np.stack([-s / 2, s / 2], axis=1) if s.ndim == 1 else s


def _class_scores(estimator: Any, X: np.ndarray | None, names: list[str]) -> np.ndarray:
    """Scores (N, K) of an estimator in ``names`` order (decision_function, else predict_proba)."""
    if X is None:
        raise EditError("Comparing with the black box needs each split's embeddings (keep_X=True).")
    s = _scores(estimator, X) if hasattr(estimator, "decision_function") else np.asarray(estimator.predict_proba(X))
    order = [[str(c) for c in estimator.classes_].index(n) for n in names]
    return s[:, order]


__all__ = ["compare_baselines", "concept_shift", "erase_with", "group_balanced_accuracy", "independence_weights",
           "repair_candidates", "suggest_repairs", "worst_group_accuracy"]
