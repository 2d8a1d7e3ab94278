"""Seeded, optionally stratified train/val/test splits that record how they were made.

    splits = make_splits(len(ds), {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0, stratify=ds.labels)
    ds.subset(splits["train"])
    splits.record()     # {"seed": 0, "fractions": {...}, "stratified": True, "sizes": {...}, "sha256": ...}

The same (n, fractions, seed, labels) always gives the same indices, so storing ``record()``
next to a model is enough to rebuild its splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_DEFAULT_NAMES = {1: ("train",), 2: ("train", "test"), 3: ("train", "val", "test")}


class Splits(dict):
    """``name -> sorted int64 indices`` plus the seed, fractions and stratification used."""

    def __init__(self, parts: dict[str, np.ndarray], seed: int, fractions: dict[str, float],
                 stratified: bool) -> None:
        super().__init__(parts)
        self.seed, self.fractions, self.stratified = seed, fractions, stratified

    def record(self) -> dict[str, Any]:
        """JSON-ready description (seed, fractions, sizes and a hash of the indices)."""
        h = hashlib.sha256()
        for name, idx in self.items():
            h.update(name.encode() + np.asarray(idx, np.int64).tobytes())
        return {"seed": self.seed, "fractions": dict(self.fractions), "stratified": self.stratified,
                "sizes": {k: int(len(v)) for k, v in self.items()}, "sha256": h.hexdigest()[:16]}


def make_splits(n: int, fractions: Mapping[str, float] | Sequence[float] = (0.8, 0.1, 0.1),
                seed: int = 0, stratify: Sequence[int] | np.ndarray | None = None) -> Splits:
    """Split ``range(n)`` into disjoint index sets.

    Parameters
    ----------
    n : int
        Number of samples.
    fractions : dict name -> fraction, or a sequence (named train/val/test)
        Must be positive and sum to at most 1; any remainder is left out.
    seed : int
    stratify : array-like of shape (n,), optional
        Labels; each split then keeps the class proportions (per-class rounding).
    """
    if not isinstance(fractions, Mapping):
        fr = list(fractions)
        if len(fr) not in _DEFAULT_NAMES:
            raise ValueError(f"Give 1-3 fractions or a dict name -> fraction; got {fr!r}.")
        fractions = dict(zip(_DEFAULT_NAMES[len(fr)], fr, strict=True))
    fractions = {str(k): float(v) for k, v in fractions.items()}
    if not fractions or any(not 0 < v <= 1 for v in fractions.values()) or sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"Split fractions must be in (0, 1] and sum to at most 1; got {fractions!r}.")
    if int(n) < 0:
        raise ValueError(f"n must be >= 0; got {n!r}.")
    rng = np.random.default_rng(seed)
    if stratify is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify must have one label per sample ({n}); got shape {labels.shape}.")
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    cuts = np.cumsum(list(fractions.values()))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in fractions}
    for g in groups:
        g = rng.permutation(g)
        bounds = np.concatenate([[0], np.round(cuts * len(g)).astype(int)])
        for j, name in enumerate(fractions):
            parts[name].append(g[bounds[j] : bounds[j + 1]])
    out = {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64)
           for k, v in parts.items()}
    return Splits(out, seed, fractions, stratify is not None)
