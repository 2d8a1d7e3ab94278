"""Evaluation of concept bottleneck models: accuracy, domain shift, sparsity and concept recovery.

* Accuracy: overall, per class, top-k.
* Domains (KnoBo's protocol): in-domain and out-of-domain accuracy, their gap (ID - OOD) and
  average.
* Sparsity (VLG-CBM): non-zero weights; NEC, the number of effective concepts = mean over classes
  of the non-zero weights per class; ANEC-k = accuracy once the head is truncated to NEC = k by
  keeping the k*K largest-magnitude weights (VLG-CBM's evaluation truncates, it does not retrain).
* Concept recovery against a known class-concept structure (synthetic worlds): precision and
  recall of each class's top positive weights against its planted concepts.

:func:`report` gathers all of these per split; :func:`format_report` renders the text table the
CLI prints. Model selection and early stopping belong to a validation split; pass only held-out
splits here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}.")
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def per_class_accuracy(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy (recall) of each class present in ``y_true``, keyed by ``str(class)``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {str(c): accuracy(y_true[y_true == c], y_pred[y_true == c]) for c in np.unique(y_true)}


def top_k_accuracy(y_true: Any, scores: Any, classes: Sequence, k: int = 5) -> float:
    """Share of samples whose class is among the ``k`` highest ``scores`` (N, K) columns."""
    scores = np.asarray(scores)
    classes = np.asarray(classes)
    pos = np.searchsorted(classes, np.asarray(y_true)) if np.all(classes[:-1] <= classes[1:]) else \
        np.array([list(classes).index(c) for c in y_true])
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((top == pos[:, None]).any(1).mean())


def domain_accuracy(y_true: Any, y_pred: Any, domains: Any, in_domain: str | None = None) -> dict[str, Any]:
    """KnoBo's domain-shift metrics: ``in_domain``, ``out_of_domain``, ``gap`` and ``average``.

    ``in_domain`` names the training domain (default "source" when present, else the most frequent
    domain); every other domain is out-of-domain. Also returns per-domain accuracies.
    """
    y_true, y_pred, domains = np.asarray(y_true), np.asarray(y_pred), np.asarray(domains).astype(str)
    names, counts = np.unique(domains, return_counts=True)
    if in_domain is None:
        in_domain = "source" if "source" in names else str(names[counts.argmax()])
    per = {str(d): accuracy(y_true[domains == d], y_pred[domains == d]) for d in names}
    ood = domains != in_domain
    out = {"per_domain": per, "in_domain_name": in_domain,
           "in_domain": accuracy(y_true[~ood], y_pred[~ood]) if (~ood).any() else float("nan"),
           "out_of_domain": accuracy(y_true[ood], y_pred[ood]) if ood.any() else float("nan")}
    out["gap"] = out["in_domain"] - out["out_of_domain"]
    out["average"] = (out["in_domain"] + out["out_of_domain"]) / 2
    return out


def nonzero_weights(coef: Any, tol: float = 0.0) -> int:
    """Number of class-concept weights with ``|w| > tol``."""
    return int((np.abs(np.asarray(coef)) > tol).sum())


def nec(coef: Any, tol: float = 0.0) -> float:
    """Number of effective concepts: mean over classes of the non-zero weights per class."""
    coef = np.asarray(coef)
    return float((np.abs(coef) > tol).sum(1).mean())


def prune_to_nec(coef: Any, k: float) -> np.ndarray:
    """The head truncated to NEC = ``k``: only the ``round(k * K)`` largest |weights| are kept."""
    coef = np.asarray(coef, np.float32)
    n_keep = int(round(k * coef.shape[0]))
    if n_keep >= np.count_nonzero(coef):
        return coef.copy()
    flat = np.abs(coef).ravel()
    keep = np.argpartition(-flat, n_keep - 1)[:n_keep] if n_keep > 0 else np.array([], int)
    out = np.zeros_like(coef).ravel()
    out[keep] = coef.ravel()[keep]
    return out.reshape(coef.shape)


def anec(model: Any, X: Any, y: Any, k: float = 5) -> float:
    """ANEC-k: accuracy of ``model`` with its head truncated to NEC = ``k`` (residual kept)."""
    A = model.transform(X)
    res = model.residual_logits(X) if getattr(model, "hybrid", False) else 0.0
    logits = A @ prune_to_nec(model.coef_, k).T + model.intercept_ + res
    return accuracy(y, model.classes_[logits.argmax(1)])


def concept_recovery(coef: Any, truth: Any, k: int | None = None) -> dict[str, float]:
    """Precision/recall of each class's top positive weights against the planted concepts.

    Parameters
    ----------
    coef : array (K, M)
        Learned class-concept weights.
    truth : array (K, M)
        Ground-truth 0/1 class-concept matrix (e.g. ``ConceptWorld.class_concepts``).
    k : int, optional
        Concepts taken per class; default: as many as the class has planted.

    Returns
    -------
    dict with ``precision``, ``recall`` (means over classes) and ``f1``.
    """
    coef, truth = np.asarray(coef), np.asarray(truth).astype(bool)
    if coef.shape != truth.shape:
        raise ValueError(f"coef has shape {coef.shape} but the ground truth has shape {truth.shape}.")
    prec, rec = [], []
    for w, t in zip(coef, truth, strict=True):
        n = int(t.sum()) if k is None else k
        order = np.argsort(-w, kind="stable")[:n]
        chosen = order[w[order] > 0]
        hits = int(t[chosen].sum())
        prec.append(hits / len(chosen) if len(chosen) else 0.0)
        rec.append(hits / t.sum() if t.any() else 1.0)
    p, r = float(np.mean(prec)), float(np.mean(rec))
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def report(model: Any, splits: Mapping[str, Sequence], *, truth: Any = None,
           anec_k: Sequence[float] = (5,), top_k: int = 5, in_domain: str | None = None) -> dict[str, Any]:
    """Every metric for a fitted model on named splits ``name -> (X, y)``, ``(X, y, domains)`` or
    ``{"X", "y", "domains"}`` (the CLI's form).

    Returns ``{"method", "sparsity", "recovery" (None without ``truth``), "domains", "splits"}``;
    each split has ``n``, ``accuracy``, ``top_<k>``, ``per_class``, ``anec`` and, with domains,
    ``per_domain``. ``domains`` pools every split with domain labels (e.g. "test" in the source
    domain and "shifted") into KnoBo's in-domain / out-of-domain / gap / average
    (:func:`domain_accuracy`); None when no split has domains.
    """
    coef = np.asarray(model.coef_)
    out: dict[str, Any] = {
        "method": getattr(model, "method", type(model).__name__),
        "sparsity": {"nonzero_weights": nonzero_weights(coef), "total_weights": int(coef.size),
                     "nec": nec(coef), "n_concepts": int(coef.shape[1])},
        "recovery": None if truth is None else concept_recovery(coef, truth),
        "domains": None,
        "splits": {},
    }
    pooled: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for name, split in splits.items():
        X, y, domains = _unpack(name, split)
        scores = model.decision_function(X)
        pred = model.classes_[scores.argmax(1)]
        entry = {"n": int(len(y)), "accuracy": accuracy(y, pred),
                 f"top_{top_k}": top_k_accuracy(y, scores, model.classes_, top_k),
                 "per_class": per_class_accuracy(y, pred),
                 "anec": {str(k): anec(model, X, y, k) for k in anec_k}}
        if domains is not None:
            entry["per_domain"] = domain_accuracy(y, pred, domains)["per_domain"]
            pooled.append((y, pred, np.asarray(domains).astype(str)))
        out["splits"][name] = entry
    if pooled:
        y, pred, dom = (np.concatenate(parts) for parts in zip(*pooled, strict=True))
        out["domains"] = domain_accuracy(y, pred, dom, in_domain=in_domain)
    return out


def _unpack(name: str, split: Any) -> tuple[Any, np.ndarray, Any]:
    """``(X, y, domains or None)`` from a tuple or a mapping with keys X, y[, domains]."""
    if isinstance(split, Mapping):
        if "X" not in split or "y" not in split:
            raise ValueError(f"Split {name!r} must have keys 'X' and 'y' (and optionally 'domains'); "
                             f"got {sorted(split)}.")
        return split["X"], np.asarray(split["y"]), split.get("domains")
    if len(split) not in (2, 3):
        raise ValueError(f"Split {name!r} must be (X, y) or (X, y, domains); got {len(split)} items.")
    return split[0], np.asarray(split[1]), split[2] if len(split) == 3 else None


def format_report(rep: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`report`'s output (one row per split), for the CLI."""
    k_names = "/".join(next(iter(rep["splits"].values()))["anec"]) if rep["splits"] else ""
    rows = [("split", "n", "acc", "top-k", f"ANEC-{k_names}")]
    for name, s in rep["splits"].items():
        topk = next((v for k, v in s.items() if k.startswith("top_")), float("nan"))
        an = "/".join(f"{v:.3f}" for v in s["anec"].values()) or "-"
        rows.append((name, str(s["n"]), f"{s['accuracy']:.3f}", f"{topk:.3f}", an))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    sp = rep["sparsity"]
    lines.append(f"\n{rep['method']}: {sp['nonzero_weights']}/{sp['total_weights']} non-zero weights, "
                 f"NEC {sp['nec']:.2f} over {sp['n_concepts']} concepts")
    d = rep.get("domains")
    if d:
        lines.append(f"domains (in-domain {d['in_domain_name']!r}): ID {d['in_domain']:.3f}, "
                     f"OOD {d['out_of_domain']:.3f}, gap {d['gap']:.3f}, average {d['average']:.3f}")
    if rep.get("recovery"):
        r = rep["recovery"]
        lines.append(f"concept recovery: precision {r['precision']:.3f}, recall {r['recall']:.3f}")
    return "\n".join(lines)


__all__ = ["accuracy", "anec", "concept_recovery", "domain_accuracy", "format_report", "nec",
           "nonzero_weights", "per_class_accuracy", "prune_to_nec", "report", "top_k_accuracy"]
