"""Discover what no concept names: class-linked image groups the model's concepts do not describe.

A shortcut nobody named (a stripe, a logo, a border, a scanner mark) shows up on most training
images of one class and on few of the others. :func:`discover_shortcuts` finds such groups from the
training site's own embeddings and labels, with no second site and no artifact flags::

    from cbm.edits.discover import discover_shortcuts
    from cbm.edits import AddConcept

    cands = discover_shortcuts(model, X_val, y_val, top=5)
    for c in cands:
        print(c.rank, c.class_name, len(c.indices), c.share_in_class, c.share_elsewhere, c.score)
    pos, neg = cands[0].concept_examples()
    edit = AddConcept.from_examples("tag", X_val[pos], X_val[neg], {cands[0].class_name: 0.0}, model=model)

How (all vectorised; a few seconds for 5,000 x 1,280 embeddings on two cores):

1. **Remove what the concepts name.** The embeddings are projected off the span of the directions
   the model's concepts are scored along (:func:`concept_directions`: the concept bank's vectors:
   text embeddings or CAVs), so only variation that no concept describes is left.
2. **Candidate directions** in that residual, within its top ``n_components`` principal
   components: one shrunk linear probe per class (class against the rest) and the top principal
   components of the within-class-centred residual.
3. **Split** the images along each direction into two groups at Otsu's threshold, refine the
   direction once as the probe between the two groups and split again.
4. **Rank** each split, on the side and class where the high group is most linked to one class,
   by ``score = class_correlation * separation`` (see :class:`ShortcutCandidate`); near-duplicate
   groups (Jaccard > 0.5) keep the best one.

:func:`candidate_evidence` shows where in an image the class evidence lies (occlusion maps of the
class logit through :func:`cbm.explain.occlusion_map`); :func:`save_candidates` and
:func:`load_candidates` keep the candidates as JSON, which ``cbm discover --out`` writes and
``cbm edit MODEL add-concept --from-candidate FILE#RANK`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm.exceptions import DataError, EditError, NotFittedError, unknown_name_message

FORMAT = "cbmkit-shortcuts/1"
#: Otsu's between-group share of variance for one Gaussian bump (2/pi): ``separation`` is 0 there.
_GAUSSIAN_ETA = 2.0 / np.pi

__all__ = ["ShortcutCandidate", "candidate_evidence", "concept_directions", "discover_shortcuts",
           "load_candidates", "save_candidates"]


@dataclass(frozen=True, eq=False)
class ShortcutCandidate:
    """A group of images, linked to one class, that the model's concepts do not describe.

    Attributes
    ----------
    rank : int
        1 for the highest score.
    class_name : str
        The class the group is linked to (and pushes the model toward).
    indices : ndarray of shape (n,)
        Rows of ``X`` in the group.
    direction : ndarray of shape (d,)
        Unit vector in embedding space, orthogonal to the concept directions, along which the
        group lies on the high side.
    score : float
        ``class_correlation * separation``, in [0, 1]: about 0 when nothing but noise splits the
        images, 0.4-0.6 for a planted shortcut on 90% of a class and 5% of the others.
    class_correlation : float
        Phi coefficient between "in the group" and "of the class" (1: the group is the class).
    separation : float
        How clearly the images split into two groups along ``direction``: Otsu's between-group
        share of variance rescaled so one Gaussian bump gives 0 and two point masses give 1.
    share_in_class, share_elsewhere : float
        Fraction of the class's images in the group, and of the other classes' images.
    support : float
        Share of the group's displacement from the rest of its class (the within-class mean
        difference in the raw embeddings) that the concept directions span: 0 when no concept can
        see it, 1 when it is a combination of concepts (then it is named, not a shortcut).
    reliance : float
        Mean drop of the model's probability of ``class_name`` on the group's images when that
        displacement is removed from them (how much the model leans on it; 0 when it does not).
    class_indices : ndarray
        Rows of ``X`` of class ``class_name`` (what :meth:`concept_examples` draws negatives from).
    n_samples : int
        Rows of ``X``.
    random_state : int
        Seed of :meth:`concept_examples`' top-up negatives.
    source : dict
        Where the rows come from, as :func:`save_candidates` stored it (``model``, ``data``,
        ``split``; ``positive_ids``/``negative_ids`` when the rows had ids); empty when fresh.
    """

    rank: int
    class_name: str
    indices: np.ndarray
    direction: np.ndarray
    score: float
    class_correlation: float
    separation: float
    share_in_class: float
    share_elsewhere: float
    support: float
    reliance: float
    class_indices: np.ndarray = field(repr=False)
    n_samples: int = field(repr=False)
    source: dict[str, Any] = field(default_factory=dict, repr=False)
    random_state: int = field(default=0, repr=False)

    def concept_examples(self, random_state: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(positives, negatives)``: rows in the group, and rows of the same class outside it, topped
        up with other classes' rows outside it (seeded) when the class has fewer than the positives."""
        random_state = self.random_state if random_state is None else random_state
        pos = np.asarray(self.indices, np.int64)
        outside = np.ones(self.n_samples, bool)
        outside[pos] = False
        neg = np.asarray(self.class_indices, np.int64)
        neg = neg[outside[neg]]
        if len(neg) < len(pos):
            others = np.flatnonzero(outside)
            others = np.setdiff1d(others, neg, assume_unique=True)
            rng = np.random.default_rng(random_state)
            extra = rng.choice(others, size=min(len(pos) - len(neg), len(others)), replace=False)
            neg = np.concatenate([neg, np.sort(extra)])
        return pos, neg

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (arrays as lists), as :func:`save_candidates` writes them."""
        pos, neg = self.concept_examples()
        return {"rank": self.rank, "class": self.class_name, "score": self.score,
                "class_correlation": self.class_correlation, "separation": self.separation,
                "share_in_class": self.share_in_class, "share_elsewhere": self.share_elsewhere,
                "support": self.support, "reliance": self.reliance, "n_samples": self.n_samples,
                "indices": self.indices.tolist(), "class_indices": self.class_indices.tolist(),
                "positives": pos.tolist(), "negatives": neg.tolist(),
                "direction": [float(v) for v in self.direction]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: dict[str, Any] | None = None) -> ShortcutCandidate:
        """The inverse of :meth:`to_dict`, with ``source`` (where the rows come from)."""
        return cls(int(d["rank"]), str(d["class"]), np.asarray(d["indices"], np.int64),
                   np.asarray(d["direction"], np.float32), float(d["score"]), float(d["class_correlation"]),
                   float(d["separation"]), float(d["share_in_class"]), float(d["share_elsewhere"]),
                   float(d["support"]), float(d["reliance"]), np.asarray(d["class_indices"], np.int64),
                   int(d["n_samples"]), dict(source or {}))


# -- what the concepts name ------------------------------------------------------------------------
def concept_directions(model: Any, X: Any = None) -> np.ndarray:
    """Directions (m, d) in embedding space that the model's concepts are scored along.

    The vectors (text embeddings or CAVs) of the bank the model was given (its ``concepts``
    parameter) for the concepts the head reads, plus those of concepts added by edits; the current
    bank's vectors when the given bank has none. A method that grounds its concepts (KnoBo) keeps
    its fitted predictors there once saved, and a predictor fitted where a shortcut co-occurs with
    the class absorbs part of it: pass the concepts' text embeddings as ``concept_vectors`` to
    :func:`discover_shortcuts` then. Without vectors (a learned concept layer), the directions are
    the least-squares map from the activations ``model.transform(X)`` back to ``X``.
    """
    d = int(model.n_features_in_)
    current = model.concepts_
    given = model.get_params(deep=False).get("concepts") if hasattr(model, "get_params") else None
    if given is not None and given.vectors is not None and given.vectors.shape[1] == d:
        names = [n for n in current.names if n in given.names]
        rows = [given.vectors[given.index(n)] for n in names]
        added = [current.vectors[current.index(n)] for n in current.names if n not in given.names] \
            if current.vectors is not None and current.vectors.shape[1] == d else []
        if rows or added:
            return np.asarray(rows + added, np.float64).reshape(-1, d)
    if current.vectors is not None and current.vectors.shape[1] == d:
        return np.asarray(current.vectors, np.float64)
    if X is None:
        raise EditError(f"{type(model).__name__}'s concepts have no vectors; pass X to read their "
                        "directions from the activations, or pass concept_vectors.")
    X = np.asarray(X, np.float64)
    A = np.asarray(model.transform(X), np.float64)
    B, *_ = np.linalg.lstsq(A - A.mean(0), X - X.mean(0), rcond=None)
    return B


def _orthonormal(C: np.ndarray) -> np.ndarray:
    """An orthonormal basis (d, r) of the row space of ``C`` (m, d), from the small Gram matrix."""
    if not len(C) or not np.any(C):
        return np.zeros((C.shape[1], 0))
    ev, U = np.linalg.eigh(C @ C.T)
    keep = ev > 1e-10 * ev.max()
    return (C.T @ U[:, keep]) / np.sqrt(ev[keep])


# -- splitting ----------------------------------------------------------------------------------
def _otsu(S: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``S`` (n, D): Otsu's threshold (D,) and the between-group share of variance (D,),
    over splits that leave at least ``min_size`` values on each side."""
    n, D = S.shape
    o = np.sort(S, axis=0)
    cs = np.cumsum(o, axis=0)
    i = np.arange(1, n, dtype=np.float64)[:, None]
    m0, m1 = cs[:-1] / i, (cs[-1] - cs[:-1]) / (n - i)
    between = (i / n) * (1 - i / n) * (m0 - m1) ** 2
    between[: min_size - 1] = -1.0
    between[n - min_size:] = -1.0
    best = between.argmax(0)
    cols = np.arange(D)
    eta = np.maximum(between[best, cols], 0.0) / np.maximum(S.var(0), 1e-12)
    return (o[best, cols] + o[best + 1, cols]) / 2, eta


def _phi(M: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Phi coefficients (D, K) between group masks ``M`` (n, D) and class indicators ``Y`` (n, K)."""
    n = len(M)
    p, q = M.mean(0), Y.mean(0)
    pk = (M.T.astype(np.float64) @ Y.astype(np.float64)) / n
    den = np.sqrt(np.outer(p * (1 - p), q * (1 - q)))
    return np.where(den > 0, (pk - np.outer(p, q)) / np.maximum(den, 1e-12), 0.0)


def _labels(model: Any, y: Any, n: int) -> np.ndarray:
    """Class indices (n,) of labels ``y`` given by name (or by the model's own label values)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"y must hold one class label per row of X ({n}); got shape {y.shape}.")
    names = list(model.class_names_)
    lookup = {c: k for k, c in enumerate(names)}
    keys = y.astype(str)
    miss = sorted(set(keys.tolist()) - set(lookup))
    if miss:
        raise DataError(unknown_name_message("class", miss[0], names)
                        + " Pass labels by the model's class names.")
    return np.asarray([lookup[k] for k in keys], np.int64) if n else np.zeros(0, np.int64)


def _check(model: Any, X: Any, top: int, n_components: int) -> np.ndarray:
    if not hasattr(model, "coef_"):
        raise NotFittedError(f"This {type(model).__name__} is not fitted yet; call fit(X, y) first.")
    if getattr(model, "multilabel_", False):
        raise EditError("discover_shortcuts looks for groups linked to one class; this model is multi-label. "
                        "Run it on one finding's concept model instead.")
    if not isinstance(top, int | np.integer) or top < 1:
        raise ValueError(f"top must be a positive integer; got {top!r}.")
    if not isinstance(n_components, int | np.integer) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer; got {n_components!r}.")
    X = np.asarray(X, np.float32)
    if X.ndim != 2 or X.shape[1] != model.n_features_in_:
        raise DataError(f"X must be embeddings (N, {model.n_features_in_}) from the model's encoder; got "
                        f"shape {X.shape}.")
    if not np.isfinite(X).all():
        raise DataError("X contains NaN or infinite values; check the embedding cache.")
    return X


def discover_shortcuts(model: Any, X: Any, y: Any, *, top: int = 10, random_state: int = 0,
                       concept_vectors: Any = None, n_components: int = 64, shrinkage: float = 0.1,
                       min_size: int | None = None) -> list[ShortcutCandidate]:
    """Rank groups of images linked to one class that the model's concepts do not describe.

    Parameters
    ----------
    model : fitted concept model
    X : array-like of shape (N, d)
        Training-site embeddings (the train or val split the model was trained on).
    y : array-like of shape (N,)
        Their class labels, by the model's class names.
    top : int, default=10
        Candidates returned, best first.
    random_state : int, default=0
        Seed of :meth:`ShortcutCandidate.concept_examples` (the search itself is deterministic).
    concept_vectors : array-like of shape (m, d), optional
        Directions the concepts name (default: :func:`concept_directions`).
    n_components : int, default=64
        Principal components of the residual searched.
    shrinkage : float, default=0.1
        Ridge added to the residual's component variances (times their mean) in the probes.
    min_size : int, optional
        Smallest group (default: 5, or 1% of N, or half the median class size, whichever is smaller
        beyond 5).

    Returns
    -------
    list of ShortcutCandidate
        At most ``top``, ranked by ``score``; fewer when fewer distinct groups exist.
    """
    X = _check(model, X, top, n_components)
    N, d = X.shape
    yi = _labels(model, y, N)
    K = len(model.class_names_)
    counts = np.bincount(yi, minlength=K)
    if N < 20 or (counts > 0).sum() < 2:
        raise DataError(f"discover_shortcuts needs at least 20 images of at least 2 classes; got {N} images of "
                        f"{int((counts > 0).sum())} class(es).")
    if min_size is None:
        min_size = max(5, int(min(0.01 * N, 0.5 * np.median(counts[counts > 0]))))
    min_size = int(min(max(min_size, 1), N // 2))
    C = np.asarray(concept_directions(model, X) if concept_vectors is None else concept_vectors, np.float64)
    if C.ndim != 2 or C.shape[1] != d:
        raise DataError(f"concept_vectors must have shape (m, {d}); got {C.shape}.")
    Q = _orthonormal(C)
    if Q.shape[1] >= d - 1:
        raise EditError(f"The model's {len(C)} concept directions span the whole {d}-d embedding, so nothing "
                        "is left that no concept names (a linear probe, or more concepts than dimensions).")

    Z, ev, V = _residual_components(X, Q, yi, K, int(min(n_components, d - Q.shape[1], N - K)))
    lam = shrinkage * float(ev.mean()) + 1e-12
    present = np.flatnonzero(counts > 0)
    dirs = [(Z[yi == k].mean(0) - Z[yi != k].mean(0)) / (ev + lam) for k in present]
    r = Z.shape[1]
    dirs += list(np.eye(r)[: min(8, r)])
    D = np.stack(dirs, 1)
    D /= np.maximum(np.linalg.norm(D, axis=0), 1e-12)
    Y = np.eye(K, dtype=bool)[yi]

    S = Z @ D
    thr, _ = _otsu(S, min_size)
    high = S > thr
    # refine once: the probe between the two groups, then split again
    n_hi = np.maximum(high.sum(0), 1)
    n_lo = np.maximum((~high).sum(0), 1)
    diff = (Z.T @ high) / n_hi - (Z.T @ ~high) / n_lo
    D = diff / (ev + lam)[:, None]
    D /= np.maximum(np.linalg.norm(D, axis=0), 1e-12)
    S = Z @ D
    thr, eta = _otsu(S, min_size)
    separation = np.clip((eta - _GAUSSIAN_ETA) / (1 - _GAUSSIAN_ETA), 0.0, 1.0)

    found = []
    for side in (1.0, -1.0):
        M = (S > thr) if side > 0 else (S <= thr)
        phi = _phi(M, Y)
        phi[:, counts == 0] = -np.inf
        k = phi.argmax(1)
        for c in range(S.shape[1]):
            size = int(M[:, c].sum())
            if size < min_size or phi[c, k[c]] <= 0:
                continue
            found.append((float(phi[c, k[c]] * separation[c]), c, side, int(k[c]), float(phi[c, k[c]])))
    found.sort(key=lambda t: -t[0])

    kept: list[tuple] = []
    for cand in found:
        m = (S[:, cand[1]] > thr[cand[1]]) if cand[2] > 0 else (S[:, cand[1]] <= thr[cand[1]])
        if any(_jaccard(m, other) > 0.5 or abs(float(D[:, cand[1]] @ D[:, c2])) > 0.9
               for _, c2, *_rest, other in kept):  # the same group, or the other side of the same axis
            continue
        kept.append((*cand, m))
        if len(kept) == top:
            break
    return _candidates(model, X, yi, Y, Q, V, D, kept, separation, int(random_state))


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float32 through torch (faster than numpy's float64 on few cores), as float64."""
    import torch

    return (torch.as_tensor(np.asarray(a, np.float32)) @ torch.as_tensor(np.asarray(b, np.float32))).double().numpy()


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def _residual_components(X: np.ndarray, Q: np.ndarray, yi: np.ndarray, K: int, r: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The residual off the concept span ``Q`` (d, q), in its top ``r`` within-class principal
    components: scores Z (N, r) of the (uncentred-by-class) residual, variances (r,), axes V (d, r)."""
    import torch

    Xt = torch.as_tensor(X, dtype=torch.float32)
    Xt = Xt - Xt.mean(0)
    Qt = torch.as_tensor(Q, dtype=torch.float32)
    R = Xt - (Xt @ Qt) @ Qt.T if Qt.shape[1] else Xt  # what no concept direction carries
    N, d = R.shape
    onehot = torch.zeros(N, K, dtype=torch.float32)
    onehot[torch.arange(N), torch.as_tensor(yi)] = 1.0
    means = (onehot.T @ R) / onehot.sum(0).clamp(min=1)[:, None]
    W = R - means[torch.as_tensor(yi)]
    # top-r axes by subspace iteration (a dense eigendecomposition of d x d is slow on few cores)
    q = min(r + 16, d, N)
    Y = torch.as_tensor(np.random.default_rng(0).standard_normal((d, q)), dtype=torch.float32)
    for _ in range(5):
        Y = torch.linalg.qr(W.T @ (W @ Y)).Q
    B = (W @ Y).double()
    ev, U = torch.linalg.eigh(B.T @ B / N)
    ev, V = ev.flip(0)[:r], (Y.double() @ U.flip(1)[:, :r]).float()
    Z = (R @ V).double().numpy()
    return Z, ev.clamp(min=0).numpy(), V.double().numpy()


def _candidates(model: Any, X: np.ndarray, yi: np.ndarray, Y: np.ndarray, Q: np.ndarray, V: np.ndarray,
                D: np.ndarray, kept: list[tuple], separation: np.ndarray, seed: int) -> list[ShortcutCandidate]:
    """The ranked groups with their shares, concept support and the model's reliance on them."""
    if not kept:
        return []
    rng = np.random.default_rng(seed)
    Yf = Y.astype(np.float64)
    totals, sizes = _matmul(Yf.T, X), Yf.sum(0)
    masks = np.stack([m for *_, m in kept], 1)  # (N, T)
    n_in = masks.T.astype(np.float64) @ Yf  # (T, K): group members per class
    n_out = sizes - n_in
    # the group's offset from the rest of its class, pooled over classes (weighted by members):
    # sum_k n_in (mean_in - mean_out) = sum_i m_i (1 + rho_y(i)) x_i - sum_k rho_k total_k, rho = n_in / n_out
    rho = np.where((n_in > 0) & (n_out > 0), n_in / np.maximum(n_out, 1), 0.0)
    weight = masks * (1.0 + rho[:, yi].T) * (rho[:, yi].T > 0)
    used = np.where(rho > 0, n_in, 0.0).sum(1)
    deltas = (_matmul(weight.T, X) - rho @ totals) / np.maximum(used, 1)[:, None]
    rows, shifted = [], []
    for (*_, m), delta in zip(kept, deltas, strict=True):
        idx = np.flatnonzero(m)
        probe = idx if len(idx) <= 512 else np.sort(rng.choice(idx, 512, replace=False))
        rows.append((idx, probe))
        shifted.append(X[probe] - delta.astype(np.float32))
    p = model.predict_proba(X[np.concatenate([pr for _, pr in rows])])
    p_off = model.predict_proba(np.concatenate(shifted))
    out, start = [], 0
    for rank, ((score, c, side, k, phi, m), delta, (idx, probe)) in enumerate(zip(kept, deltas, rows, strict=True), 1):
        drop = float((p[start:start + len(probe), k] - p_off[start:start + len(probe), k]).mean())
        start += len(probe)
        norm2 = float(delta @ delta)
        support = float(((delta @ Q) ** 2).sum() / norm2) if norm2 > 0 else 0.0
        u = V @ (D[:, c] * side)
        u = u / max(float(np.linalg.norm(u)), 1e-12)
        in_class = yi == k
        out.append(ShortcutCandidate(
            rank, str(model.class_names_[k]), idx, u.astype(np.float32), round(score, 6), round(phi, 6),
            round(float(separation[c]), 6), float(m[in_class].mean()),
            float(m[~in_class].mean()) if (~in_class).any() else 0.0, round(support, 6),
            round(drop if norm2 > 0 else 0.0, 6), np.flatnonzero(in_class), len(X), random_state=seed))
    return out


# -- evidence ----------------------------------------------------------------------------------
class _ClassLogits:
    """A view of a model whose "concepts" are its class logits, for :func:`cbm.explain.occlusion_map`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.concept_names_ = list(model.class_names_)

    def transform(self, X: Any) -> np.ndarray:
        return self.model.logits(X)


def candidate_evidence(model: Any, images: Any, class_name: str | ShortcutCandidate, encoder: Any = None,
                       **occlusion: Any) -> list[np.ndarray]:
    """Occlusion maps (H, W) of the class logit, one per image (PIL, uint8 array or path): positive
    where hiding a region lowers the score of ``class_name`` (or of a candidate's class), through
    :func:`cbm.explain.occlusion_map` with the model's recorded encoder (or ``encoder``)."""
    from cbm.encoders.rebuild import encoder_for
    from cbm.explain import class_index, occlusion_map

    cls = class_name.class_name if isinstance(class_name, ShortcutCandidate) else class_name
    k = class_index(model, cls)
    encoder = encoder_for(model) if encoder is None else encoder
    view = _ClassLogits(model)
    return [occlusion_map(view, image, k, encoder, **occlusion) for image in images]


# -- files -------------------------------------------------------------------------------------
def save_candidates(path: str | Path, candidates: list[ShortcutCandidate], ids: Any = None,
                    **meta: Any) -> Path:
    """Write ``candidates`` as JSON (atomically); ``ids`` (N,) names the rows, ``meta`` (model, data,
    split ...) is stored beside them. :func:`load_candidates` reads it back."""
    from cbm._io import atomic_write_json

    rows = []
    for c in candidates:
        d = c.to_dict()
        if ids is not None:
            ids_arr = np.asarray(ids).astype(str)
            d["positive_ids"] = ids_arr[d["positives"]].tolist()
            d["negative_ids"] = ids_arr[d["negatives"]].tolist()
        rows.append(d)
    atomic_write_json(Path(path), {"format": FORMAT, **meta, "candidates": rows})
    return Path(path)


def load_candidates(path: str | Path) -> list[ShortcutCandidate]:
    """The candidates in a file of :func:`save_candidates`; ``FILE#RANK`` keeps the one of that rank.

    Each candidate's ``source`` holds what was stored beside it (``model``, ``data``, ``split``) and
    its ``positive_ids``/``negative_ids`` when the rows had ids, so its examples can be read back::

        c = load_candidates("out/candidates.json#1")[0]
        X = load_eval_data(c.source["data"])[c.source["split"]]["X"]
        pos, neg = c.concept_examples()
    """
    spec = str(path)
    file, _, rank = spec.partition("#")
    p = Path(file)
    if not p.is_file():
        raise DataError(f"Candidates file {file!r} not found; write it with `cbm discover MODEL --out DIR` "
                        "(DIR/candidates.json).")
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"Candidates file {file!r} is not readable JSON ({e}); write it again with "
                        "`cbm discover --out`.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("candidates"), list):
        raise DataError(f"{file!r} is not a candidates file (format {FORMAT!r}); write it with `cbm discover --out`.")
    rows = doc["candidates"]
    if rank:
        ranks = [r.get("rank") for r in rows if isinstance(r, dict)]
        if not rank.isdigit() or int(rank) not in ranks:
            raise DataError(f"{file!r} has no candidate of rank {rank!r}; it has ranks {ranks}. Write FILE#RANK "
                            "with one of them.")
        rows = [r for r in rows if r.get("rank") == int(rank)]
    meta = {k: v for k, v in doc.items() if k not in ("format", "candidates")}
    try:
        return [ShortcutCandidate.from_dict(r, {**meta, **{k: r[k] for k in ("positive_ids", "negative_ids")
                                                           if k in r}}) for r in rows]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{file!r} has a malformed candidate ({e!r}); write it again with `cbm discover --out`.") \
            from None
