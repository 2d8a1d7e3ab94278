"""Evaluation of concept bottleneck models: accuracy, domain shift, sparsity and concept recovery.

* Accuracy: overall, per class, top-k; the one ROC AUC of the package (:func:`roc_auc`).
* Domains (KnoBo's protocol): in-domain and out-of-domain accuracy, their gap (ID - OOD) and
  average.
* Sparsity (VLG-CBM): non-zero weights; NEC, the number of effective concepts = mean over classes
  of the non-zero weights per class; ANEC-k as VLG-CBM defines it (:func:`anec`): a new final layer
  is refitted on the model's concept activations of the training split along a glm-saga-like
  elastic-net path (alpha 0.99, lambda shrinking by 2^0.1 per step from the value that zeroes
  every weight, at most 150 steps) until NEC reaches k, then truncated to its k*K largest weights,
  and its accuracy is measured. :func:`anec_truncated` is the cheaper variant that only
  truncates the model's own head (no refit; it measures the trained head, not the concepts).
* Concept recovery against a known class-concept structure (synthetic worlds): precision and
  recall of each class's top positive weights against its planted concepts.

:data:`list_metrics` / :func:`get_metric` are the registry of every metric the package reports, by the
name reports, JSON files and experiment summaries use, with what computes it (concept measures live
in :mod:`cbm.research`, finding measures in :mod:`cbm.models.multilabel`). :func:`report` gathers all of these per split; :func:`format_report` renders the text table the
CLI prints. :func:`site_report` gives accuracy and per-class recall per split and per site, with the
in-domain summary taken from the training split's sites by name (never guessed). Model selection and early stopping belong to a validation split; pass only held-out
splits here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cbm.exceptions import unknown_name_message


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}.")
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def roc_auc(scores: Any, labels: Any) -> float:
    """ROC AUC from ranks (Mann-Whitney U, ties averaged); equals scikit-learn's ``roc_auc_score``, NaN with one label only."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if not n1 or not n0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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


def independence_weights(y: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Sample weights making ``flags`` independent of ``y``: ``P(y) P(f) / P(y, f)`` per sample,
    normalised to mean 1."""
    y, flags = np.asarray(y), np.asarray(flags, bool)
    w = np.zeros(len(y))
    for c in np.unique(y):
        for f in (False, True):
            cell = (y == c) & (flags == f)
            if cell.any():
                w[cell] = (y == c).mean() * (flags == f).mean() / cell.mean()
    return w / w.mean()


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


#: VLG-CBM's sparsity path (``sparse_evaluation.py``): elastic-net mixing, step and length
ANEC_ALPHA = 0.99
ANEC_STEP = 2 ** 0.1
ANEC_MAX_STEPS = 150

#: ``anec_heads(path=)``: where the lambda path starts (None: the data's ``lambda_max / alpha``), the
#: factor lambda shrinks by per point, and the ``ddof`` of the std that standardises the activations
ANEC_PATHS: dict[str, dict[str, Any]] = {
    "project": {"start": None, "step": ANEC_STEP, "ddof": 0},
    "released": {"start": 0.1 / ANEC_ALPHA, "step": 2 ** (15 / 149), "ddof": 1},
}


def anec_heads(model: Any, X: Any, y: Any, ks: Sequence[float] = (5,), *, path: str = "project",
               alpha: float = ANEC_ALPHA, step: float | None = None, max_steps: int = ANEC_MAX_STEPS,
               max_iter: int = 200, tol: float = 1e-4) -> dict[float, dict[str, np.ndarray]]:
    r"""VLG-CBM's ANEC heads: final layers refitted on ``model``'s concept activations of the training
    data ``(X, y)``, one per target NEC ``k``.

    The activations are standardised with their training mean and std (glm-saga expects
    standardised inputs; VLG-CBM normalises its concept layer's output the same way). Along a
    decreasing path of ``lam``, each point minimises ``mean CE + lam * (alpha |W|_1 + (1 - alpha)
    / 2 |W|^2)`` by FISTA warm-started from the previous point (to a gradient mapping below ``tol``,
    at most ``max_iter`` iterations) until NEC (non-zero weights |w| > 1e-5 per class) exceeds
    ``max(ks)``, every weight is non-zero, or ``max_steps`` points were solved. For each
    ``k`` the first point whose NEC reaches ``k`` is truncated to its ``round(k * K)`` largest
    |weights|. Hybrid models keep their residual logits as a fixed offset.

    The two paths (``path=``, see :data:`ANEC_PATHS`), side by side:

    ========================  ==================================  ===============================
    \                        ``"project"`` (default)               ``"released"`` (VLG-CBM's code)
    ========================  ==================================  ===============================
    first ``lam``             ``lambda_max / alpha``: every weight  fixed ``0.1 / 0.99``
                              zero, so NEC = 1 is reachable
    factor per point          ``2 ** 0.1`` (1.072)                  ``2 ** (15 / 149)`` (1.072)
    std of the activations    ``ddof=0``                            ``ddof=1`` (unbiased)
    ========================  ==================================  ===============================

    The released code runs its path on until NEC exceeds 30; that changes no point chosen for a
    ``k <= 30`` (the path is the same sequence), so both paths stop once NEC exceeds ``max(ks)``.
    Measured on ``tests/test_metrics.py``'s small problem (240 samples, 12 concepts, 3 classes, each
    class reading 3 concepts; ``lambda_max / alpha`` = 0.238, so the released start 0.101 already
    has non-zero weights), chosen ``lam`` and training accuracy of the ANEC-k head, project vs
    released: k=1 0.137 (0.725) vs 0.101 (0.754), k=2 0.0556 (0.858) vs 0.0539 (0.867),
    k=3 0.0278 (0.912) vs 0.0288 (0.912), k=5 0.0074 (0.958) vs 0.0076 (0.954): the released
    path cannot give NEC-1 its sparsest point, and elsewhere its points fall between the project's.
    The solver stops at ``tol`` (default 1e-4) or ``max_iter`` (default 200) iterations per path
    point, which keeps ``cbm train``'s report fast; a weight near the 1e-5 support cut-off can then
    count (or miss) a concept the exact solution does not, moving the point chosen for a ``k`` by one
    step. For a fidelity check pass ``max_iter=2000, tol=1e-6`` (the test against scikit-learn does):
    on the small problem above that was 2.3 s against 1.5 s, but minutes inside ``cbm train``.

    Returns ``{k: {"coef", "intercept", "mean", "std", "lam"}}``.
    """
    import torch

    from cbm.solvers import fista, lambda_max

    if path not in ANEC_PATHS:
        raise ValueError(unknown_name_message("ANEC path", path, ANEC_PATHS))
    cfg = ANEC_PATHS[path]
    step = cfg["step"] if step is None else step
    A = np.asarray(model.transform(X), np.float64)
    mean, std = A.mean(0), A.std(0, ddof=cfg["ddof"] if len(A) > 1 else 0)
    std = np.where(std > 1e-8, std, 1.0)
    y_idx = _class_indices(model, y)
    K = len(model.classes_)
    device = getattr(model, "device_", None) or "cpu"  # the model's device: GPU when it trained there
    At = torch.as_tensor(((A - mean) / std).astype(np.float32), device=device)
    yt = torch.as_tensor(y_idx, device=device)
    offset = None
    if getattr(model, "hybrid", False):
        offset = torch.as_tensor(np.asarray(model.residual_logits(X), np.float32), device=device)
    if cfg["start"] is None:
        lam = lambda_max(At, yt, n_classes=K, offset=offset) / max(alpha, 1e-3)
    else:
        lam = float(cfg["start"])
    W = b = None
    points: list[tuple[float, np.ndarray, np.ndarray]] = []
    for _ in range(max_steps):
        res = fista(At, yt, lam * alpha, lam * (1 - alpha), W0=W, b0=b, n_classes=K, offset=offset,
                    max_iter=max_iter, tol=tol)
        W, b = res.coef, res.intercept
        points.append((lam, W.cpu().numpy().copy(), b.cpu().numpy().copy()))
        if _path_nec(points[-1][1]) > max(ks) or bool((W.abs() > 1e-5).all()):
            break  # sparse enough for every k, or already dense
        lam /= step
    out = {}
    for k in ks:
        lam_k, coef, intercept = next((p for p in points if _path_nec(p[1]) >= k), points[-1])
        out[k] = {"coef": prune_to_nec(coef, k), "intercept": intercept.astype(np.float32),
                  "mean": mean.astype(np.float32), "std": std.astype(np.float32), "lam": float(lam_k)}
    return out


def head_accuracy(model: Any, head: Mapping[str, Any], X: Any, y: Any) -> float:
    """Accuracy on ``(X, y)`` of a head from :func:`anec_heads` on ``model``'s concept activations."""
    A = (np.asarray(model.transform(X), np.float32) - head["mean"]) / head["std"]
    logits = A @ head["coef"].T + head["intercept"]
    if getattr(model, "hybrid", False):
        logits = logits + model.residual_logits(X)
    return accuracy(y, model.classes_[logits.argmax(1)])


def anec(model: Any, X: Any, y: Any, k: float = 5, *, train: Sequence, path: str = "project") -> float:
    """ANEC-k as VLG-CBM defines it: accuracy on ``(X, y)`` of a final layer refitted on
    ``train = (X_train, y_train)`` to NEC = ``k`` along a sparsity ``path``, then truncated
    (:func:`anec_heads`). :func:`anec_truncated` only truncates the model's own head."""
    X_tr, y_tr = train
    return head_accuracy(model, anec_heads(model, X_tr, y_tr, (k,), path=path)[k], X, y)


def anec_truncated(model: Any, X: Any, y: Any, k: float = 5) -> float:
    """Accuracy of ``model`` with its own head truncated to NEC = ``k`` (residual kept), no refit."""
    A = np.asarray(model.transform(X), np.float32)
    res = model.residual_logits(X) if getattr(model, "hybrid", False) else 0.0
    logits = A @ prune_to_nec(model.coef_, k).T + model.intercept_ + res
    return accuracy(y, model.classes_[logits.argmax(1)])


def _path_nec(coef: np.ndarray) -> float:
    return float((np.abs(coef) > 1e-5).sum(1).mean())


def _class_indices(model: Any, y: Any) -> np.ndarray:
    classes = list(model.classes_)
    index = {c: i for i, c in enumerate(classes)}
    try:
        return np.asarray([index[c] for c in np.asarray(y).tolist()], np.int64)
    except KeyError as e:
        raise ValueError(f"y has the label {e.args[0]!r}, which is not one of the model's classes "
                         f"{classes[:10]}.") from None


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
           anec_k: Sequence[float] = (5,), top_k: int = 5, in_domain: str | None = None,
           anec_train: Sequence | None = None) -> dict[str, Any]:
    """Every metric for a fitted model on named splits ``name -> (X, y)``, ``(X, y, domains)`` or
    ``{"X", "y", "domains"}`` (the CLI's form).

    Returns ``{"method", "sparsity", "recovery" (None without ``truth``), "domains", "splits"}``;
    each split has ``n``, ``accuracy``, ``top_<k>``, ``per_class``, ``anec`` (VLG-CBM's, refitted
    once on ``anec_train = (X, y)`` or else the split named "train"; empty when there is neither),
    ``anec_truncated`` and, with domains, ``per_domain``. ``domains`` pools every split with domain labels (e.g. "test" in the source
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
    if anec_train is None and "train" in splits:
        anec_train = _unpack("train", splits["train"])[:2]
    heads = anec_heads(model, *anec_train, anec_k) if anec_train is not None and anec_k else {}
    pooled: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for name, split in splits.items():
        X, y, domains = _unpack(name, split)
        scores = _class_scores(model, X)
        pred = model.classes_[scores.argmax(1)]
        entry = {"n": int(len(y)), "accuracy": accuracy(y, pred),
                 f"top_{top_k}": top_k_accuracy(y, scores, model.classes_, top_k),
                 "per_class": per_class_accuracy(y, pred),
                 "anec": {str(k): head_accuracy(model, heads[k], X, y) for k in heads},
                 "anec_truncated": {str(k): anec_truncated(model, X, y, k) for k in anec_k}}
        if domains is not None:
            entry["per_domain"] = domain_accuracy(y, pred, domains)["per_domain"]
            pooled.append((y, pred, np.asarray(domains).astype(str)))
        out["splits"][name] = entry
    if pooled:
        y, pred, dom = (np.concatenate(parts) for parts in zip(*pooled, strict=True))
        out["domains"] = domain_accuracy(y, pred, dom, in_domain=in_domain)
    return out


def _class_scores(model: Any, X: Any) -> np.ndarray:
    """(N, K) class scores: the model's logits, or its decision function made 2-column for two classes."""
    if hasattr(model, "logits"):
        return np.asarray(model.logits(X))
    scores = np.asarray(model.decision_function(X))
    return np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores


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
    first = next(iter(rep["splits"].values()), {})
    k_names = "/".join(first.get("anec_truncated") or first.get("anec") or {})
    rows = [("split", "n", "acc", "top-k", f"ANEC-{k_names}", f"ANEC-{k_names} (truncated head)")]
    for name, s in rep["splits"].items():
        topk = next((v for k, v in s.items() if k.startswith("top_")), float("nan"))
        an = "/".join(f"{v:.3f}" for v in s["anec"].values()) or "-"
        tr = "/".join(f"{v:.3f}" for v in s.get("anec_truncated", {}).values()) or "-"
        rows.append((name, str(s["n"]), f"{s['accuracy']:.3f}", f"{topk:.3f}", an, tr))
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


def site_report(model: Any, splits: Mapping[str, Any], *, train_split: str = "train",
                train_sites: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy and per-class recall of every split, pooled and per site, with the in-domain summary.

    ``splits`` as for :func:`report`. The training sites are those of ``splits[train_split]`` when it has
    site labels (``domains``), else ``train_sites``; they are never guessed. In-domain accuracy pools the
    held-out splits (all but ``train_split`` and "val") on training sites, out-of-domain those on the
    other sites; ``domains`` is None when the training sites are unknown.

    Returns ``{"training": {"split", "sites"}, "splits": {name: {"n", "accuracy", "recall",
    "sites": {site: {"n", "accuracy", "recall"}}}}, "domains"}``; ``recall`` maps each class present to
    its recall (the share of its samples predicted as it).
    """
    out: dict[str, Any] = {"training": {"split": train_split if train_split in splits else None, "sites": None},
                           "splits": {}, "domains": None}
    pooled: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for name, split in splits.items():
        X, y, domains = _unpack(name, split)
        pred = model.classes_[_class_scores(model, X).argmax(1)]
        entry = {"n": int(len(y)), "accuracy": accuracy(y, pred), "recall": per_class_accuracy(y, pred), "sites": {}}
        if domains is not None:
            domains = np.asarray(domains).astype(str)
            for site in np.unique(domains):
                m = domains == site
                entry["sites"][str(site)] = {"n": int(m.sum()), "accuracy": accuracy(y[m], pred[m]),
                                             "recall": per_class_accuracy(y[m], pred[m])}
            pooled.append((name, y, pred, domains))
        out["splits"][name] = entry
    sites = out["splits"].get(train_split, {}).get("sites") or None
    sites = sorted(sites) if sites else (sorted(map(str, train_sites)) if train_sites else None)
    out["training"]["sites"] = sites
    held = [p for p in pooled if p[0] not in (train_split, "val")]
    if sites and held:
        y, pred, dom = (np.concatenate([p[i] for p in held]) for i in (1, 2, 3))
        ind = np.isin(dom, sites)
        d = {"in_domain_sites": sites, "out_of_domain_sites": sorted(set(dom[~ind].tolist())),
             "held_out_splits": [p[0] for p in held], "in_domain_name": ", ".join(sites),
             "in_domain": accuracy(y[ind], pred[ind]) if ind.any() else float("nan"),
             "out_of_domain": accuracy(y[~ind], pred[~ind]) if (~ind).any() else float("nan")}
        d["gap"] = d["in_domain"] - d["out_of_domain"]
        d["average"] = (d["in_domain"] + d["out_of_domain"]) / 2
        out["domains"] = d
    return out


def format_site_report(rep: Mapping[str, Any]) -> str:
    """Plain text of :func:`site_report`: the training split and its sites, then one line per split
    and site with its accuracy and per-class recall, then the in-domain / out-of-domain summary."""
    tr = rep["training"]
    if tr["split"]:
        lines = [f"training split: {tr['split']!r} ("
                 + (f"site{'s' if len(tr['sites']) > 1 else ''} {', '.join(tr['sites'])}" if tr["sites"]
                    else "no site labels") + "); every other split is held out"]
    else:
        lines = ["training split: not in this data" + (f" (trained on site(s) {', '.join(tr['sites'])})"
                                                        if tr["sites"] else "")]
    rows = []
    for name, s in rep["splits"].items():
        parts = [("", s)] if len(s["sites"]) != 1 else []
        parts += [(f"site {site}", v) for site, v in s["sites"].items()]
        for i, (label, v) in enumerate(parts):
            if label == "" and s["sites"]:
                label = "all sites"
            recall = ", ".join(f"{c} {r:.3f}" for c, r in v["recall"].items())
            rows.append((name if i == 0 else "", label, f"n={v['n']}", f"acc {v['accuracy']:.3f}", f"recall: {recall}"))
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines.append("accuracy and per-class recall by split and site:")
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    d = rep.get("domains")
    if d:
        ood = ", ".join(d["out_of_domain_sites"]) or "none"
        lines.append(f"in-domain = the training site(s) {d['in_domain_name']}; held out: "
                     f"{', '.join(d['held_out_splits'])}: ID {d['in_domain']:.3f}, OOD (site(s) {ood}) "
                     f"{d['out_of_domain']:.3f}, gap {d['gap']:.3f}, average {d['average']:.3f}")
    elif any(s["sites"] for s in rep["splits"].values()):
        lines.append("no in-domain / out-of-domain summary: the training sites are unknown (the data has no "
                     "train split with site labels and the model records none)")
    return "\n".join(lines)


# -- the registry: every metric by the name reports, JSON files and experiment summaries use --------------
@dataclass(frozen=True)
class Metric:
    """One metric cbmkit reports: its name, what it is measured on, what it means and what computes it."""

    name: str
    level: str  # "model" (the weights), "split" (predictions on images), "concept" (against per-image labels), "finding"
    summary: str
    source: str  # "module:function" that computes it
    higher_is_better: bool = True

    def function(self) -> Any:
        """The function that computes it (imported on call: concept measures load scipy and pandas)."""
        module, name = self.source.split(":")
        return getattr(importlib.import_module(module), name)


_METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "split", "share of images whose class is predicted right", "cbm.metrics:accuracy"),
    Metric("top_k", "split", "share of images whose class is among the k highest scores (report key top_<k>)",
           "cbm.metrics:top_k_accuracy"),
    Metric("per_class", "split", "recall of each class", "cbm.metrics:per_class_accuracy"),
    Metric("per_domain", "split", "accuracy per site; pooled into in-domain, out-of-domain, gap and average",
           "cbm.metrics:domain_accuracy"),
    Metric("anec", "split", "accuracy of a head refitted to k effective concepts per class (VLG-CBM's ANEC-k)",
           "cbm.metrics:anec"),
    Metric("anec_truncated", "split", "accuracy of the model's own head cut to its k*K largest weights",
           "cbm.metrics:anec_truncated"),
    Metric("nec", "model", "effective concepts per class: non-zero weights per class", "cbm.metrics:nec",
           higher_is_better=False),
    Metric("nonzero_weights", "model", "non-zero weights of the head", "cbm.metrics:nonzero_weights",
           higher_is_better=False),
    Metric("recovery", "model", "precision and recall of each class's planted concepts among its top weights",
           "cbm.metrics:concept_recovery"),
    Metric("roc_auc", "split", "ROC AUC of scores against binary labels (the package's one)", "cbm.metrics:roc_auc"),
    Metric("concept_auc", "concept", "ROC AUC of each concept's score against per-image concept labels",
           "cbm.research.evaluation:concept_agreement"),
    Metric("concept_accuracy", "concept", "accuracy of each concept thresholded on the training split",
           "cbm.research.evaluation:concept_agreement"),
    Metric("leakage", "concept", "class information the concept scores carry beyond their labels",
           "cbm.research.evaluation:concept_leakage", higher_is_better=False),
    Metric("intervention_area", "concept", "area under accuracy as k concepts per image are set to their labels",
           "cbm.research.interventions:intervention_curves"),
    Metric("faithfulness", "concept", "ROC AUC of a concept's score for its label within each class",
           "cbm.research.faithfulness:concept_faithfulness"),
    Metric("auroc", "finding", "ROC AUC of each finding's probability (multi-label models)",
           "cbm.models.multilabel:finding_report"),
    Metric("average_precision", "finding", "average precision of each finding's probability",
           "cbm.models.multilabel:finding_report"),
    Metric("sensitivity", "finding", "sensitivity of each finding at the chosen specificity",
           "cbm.models.multilabel:finding_report"),
)}

METRIC_LEVELS = ("model", "split", "concept", "finding")


def list_metrics(level: str | None = None) -> list[str]:
    """The names of the metrics cbmkit reports (all, or those of one ``level``: see :data:`METRIC_LEVELS`)."""
    if level is not None and level not in METRIC_LEVELS:
        raise ValueError(unknown_name_message("metric level", str(level), METRIC_LEVELS))
    return [n for n, m in _METRICS.items() if level is None or m.level == level]


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``; a clear error listing the others otherwise."""
    if name not in _METRICS:
        raise ValueError(unknown_name_message("metric", str(name), _METRICS))
    return _METRICS[name]


__all__ = ["METRIC_LEVELS", "Metric", "accuracy", "get_metric", "list_metrics", "anec", "anec_heads", "anec_truncated", "concept_recovery", "domain_accuracy",
           "independence_weights",
           "format_report", "format_site_report", "head_accuracy", "nec", "nonzero_weights", "per_class_accuracy",
           "prune_to_nec", "report", "roc_auc", "site_report", "top_k_accuracy"]
