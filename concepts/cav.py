"""Concept activation vectors (CAVs) from example sets, as post-hoc CBMs transfer concepts.

For each concept, a linear classifier separates embeddings of positive examples from a negative
set; its weight vector and intercept become the concept's direction. The API works on
embeddings (``{concept: (n_pos, d)}`` plus negatives); :func:`cavs_from_folders` embeds image
folders through an encoder first. Train and validation examples are disjoint (the original
code samples with replacement into both, which inflates the reported accuracy).

Methods: ``"svm"`` (``SVC(kernel="linear")`` as PCBM runs it), ``"linear_svm"`` (liblinear,
same hinge objective, faster), ``"mean_diff"`` (FastCAV: difference of class means),
``"logistic"`` (class-balanced logistic regression: ``sigmoid(x.w + b)`` is a calibrated
probability, as KnoBo's concept predictors are). The regularisation ``C`` is chosen on the held-out
split (by accuracy; by log-loss for ``"logistic"``, whose probabilities are used).

References: Kim et al., "TCAV", ICML 2018; Yuksekgonul et al., "Post-hoc Concept Bottleneck
Models", ICLR 2023; Schmalwasser et al., "FastCAV", ICML 2025.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cbm.bank import ConceptBank, Provenance
from cbm.concepts.text import encoder_fingerprint
from cbm.exceptions import DataError

METHODS = ("svm", "linear_svm", "mean_diff", "logistic")
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)
#: logistic regression on unit embeddings needs weaker regularisation to give confident probabilities
LOGISTIC_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def _split(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/validation indices (at least one of each when n >= 2)."""
    perm = rng.permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1) if n >= 2 else 0
    return perm[n_val:], perm[:n_val]


def _fit_one(Xtr, ytr, method: str, C: float) -> tuple[np.ndarray, float]:
    if method == "mean_diff":
        mu_p, mu_n = Xtr[ytr == 1].mean(0), Xtr[ytr == 0].mean(0)
        w = mu_p - mu_n
        return w, float(-w @ (mu_p + mu_n) / 2)
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(Xtr, ytr)
    elif method == "svm":
        from sklearn.svm import SVC

        clf = SVC(kernel="linear", C=C).fit(Xtr, ytr)
    else:
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=C, loss="hinge", dual=True, max_iter=20000).fit(Xtr, ytr)
    return np.asarray(clf.coef_, np.float64).reshape(-1), float(np.ravel(clf.intercept_)[0])


def _balanced_log_loss(X, y, w, b) -> float:
    """Mean of the positives' and the negatives' log-loss of ``sigmoid(x.w + b)``."""
    z = X @ w + b
    loss = np.logaddexp(0.0, np.where(y == 1, -z, z))
    return float(np.mean([loss[y == c].mean() for c in (0, 1) if (y == c).any()]))


def _accuracy(X, y, w, b) -> float:
    return float(((X @ w + b > 0).astype(int) == y).mean()) if len(y) else float("nan")


def fit_cav(pos: Any, neg: Any, method: str = "svm", Cs: Sequence[float] = DEFAULT_CS,
            val_fraction: float = 0.25, random_state: int = 0) -> dict[str, Any]:
    """Fit one CAV; returns ``{"vector", "intercept", "C", "train_acc", "val_acc", "margin"}``.

    ``margin`` holds the signed distances ``(x.w + b)/|w|`` of validation examples: mean and
    std for positives and negatives, min and max.
    """
    if method not in METHODS:
        raise ValueError(f"CAV method must be one of {METHODS}; got {method!r}.")
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1]:
        raise DataError(f"CAV examples must be 2-D with the same width; got positives {pos.shape} "
                        f"and negatives {neg.shape}.")
    if len(pos) < 2 or len(neg) < 2:
        raise DataError(f"A CAV needs at least 2 positive and 2 negative examples; got {len(pos)} "
                        f"and {len(neg)}. Add examples to the concept folder.")
    rng = np.random.default_rng(random_state)
    ptr, pva = _split(len(pos), val_fraction, rng)
    ntr, nva = _split(len(neg), val_fraction, rng)
    Xtr = np.concatenate([pos[ptr], neg[ntr]])
    ytr = np.r_[np.ones(len(ptr), int), np.zeros(len(ntr), int)]
    Xva = np.concatenate([pos[pva], neg[nva]])
    yva = np.r_[np.ones(len(pva), int), np.zeros(len(nva), int)]
    if method == "logistic" and tuple(Cs) == DEFAULT_CS:
        Cs = LOGISTIC_CS
    best, by_c = None, {}
    for C in ([None] if method == "mean_diff" else Cs):
        w, b = _fit_one(Xtr, ytr, method, C)
        acc = by_c[str(C)] = _accuracy(Xva, yva, w, b)
        key = -_balanced_log_loss(Xva, yva, w, b) if method == "logistic" else acc
        if best is None or key > best[0]:
            best = (key, w, b, C)
    _, w, b, C = best
    acc = by_c[str(C)]
    d = (Xva @ w + b) / max(np.linalg.norm(w), 1e-12)
    dp, dn = d[yva == 1], d[yva == 0]
    margin = {"pos_mean": float(dp.mean()), "pos_std": float(dp.std()),
              "neg_mean": float(dn.mean()), "neg_std": float(dn.std()),
              "min": float(d.min()), "max": float(d.max())}
    return {"vector": w.astype(np.float32), "intercept": b, "C": C,
            "train_acc": _accuracy(Xtr, ytr, w, b), "val_acc": acc, "val_acc_by_C": by_c,
            "margin": margin,
            "n_train": int(len(ytr)), "n_val": int(len(yva))}


def fit_cavs(
    positives: Mapping[str, Any],
    negatives: Any,
    method: str = "svm",
    Cs: Sequence[float] = DEFAULT_CS,
    val_fraction: float = 0.25,
    random_state: int = 0,
    encoder_fingerprint: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> ConceptBank:
    """CAVs for many concepts from embeddings.

    Parameters
    ----------
    positives : mapping str -> array (n_pos, d)
        Embeddings of examples showing each concept.
    negatives : array (n_neg, d) or mapping str -> array
        One shared negative set, or one per concept.
    method : {"svm", "linear_svm", "mean_diff", "logistic"}
    Cs : sequence of float
        Regularisation values tried; the best on the validation split wins.
    encoder_fingerprint : str, optional
        Fingerprint of the encoder that made the embeddings (stored with the vectors).

    Returns
    -------
    ConceptBank
        vectors (M, d), intercepts (M,); provenance detail holds accuracy and margin stats.
    """
    if not positives:
        raise DataError("fit_cavs got no concepts; pass {concept_name: positive embeddings}.")
    names, vecs, icpts, prov = [], [], [], []
    for j, (name, pos) in enumerate(positives.items()):
        neg = negatives[name] if isinstance(negatives, Mapping) else negatives
        r = fit_cav(pos, neg, method, Cs, val_fraction, random_state + j)
        names.append(name)
        vecs.append(r.pop("vector"))
        icpts.append(r["intercept"])
        detail = {"method": method, **r, "n_pos": int(len(pos)), "n_neg": int(len(neg))}
        if sources and name in sources:
            detail["examples"] = sources[name]
        prov.append(Provenance("cav", detail))
    return ConceptBank(names, names, vectors=np.stack(vecs), intercepts=np.asarray(icpts),
                       provenance=prov, encoder_fingerprint=encoder_fingerprint,
                       metadata={"generator": "cav", "method": method})


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _embed(encoder: Any, paths: Sequence[Path]) -> np.ndarray:
    from cbm.data.images import read_image  # the toolkit's one reader: cap, 16-bit, transparency

    images = [read_image(p) for p in paths]
    out = encoder.encode_images(images)
    return out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)


def cavs_from_folders(root: str | Path, encoder: Any, negatives: str | Path = "negative",
                      **kwargs: Any) -> ConceptBank:
    """CAVs from a folder per concept of positive images and a negative image folder.

    ``root/<concept>/*.jpg`` are positives; ``negatives`` is a folder name under ``root`` or a
    path. Images go through ``encoder.encode_images(list of PIL images)``.
    """
    root = Path(root)
    neg_dir = Path(negatives) if Path(negatives).is_absolute() else root / negatives
    if not neg_dir.is_dir():
        raise FileNotFoundError(f"Negative example folder {str(neg_dir)!r} not found; put negative "
                                f"images in {str(root / 'negative')!r} or pass negatives=PATH.")
    concept_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.resolve() != neg_dir.resolve()]
    if not concept_dirs:
        raise DataError(f"No concept folders under {str(root)!r}; expected {root}/<concept>/*.jpg.")
    neg = _embed(encoder, _images(neg_dir))
    pos = {d.name.replace("_", " "): _embed(encoder, _images(d)) for d in concept_dirs}
    sources = {d.name.replace("_", " "): str(d) for d in concept_dirs}
    return fit_cavs(pos, neg, encoder_fingerprint=encoder_fingerprint(encoder),
                    sources=sources, **kwargs)
