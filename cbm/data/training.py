"""Embeddings split for training and evaluation, from the formats ``cbm train`` and ``cbm eval`` accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbm.exceptions import DataError

SPLITS = ("train", "val", "test", "shifted")


def load_training_data(spec: str | Path, seed: int = 0) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Splits ``{name: {"X", "y", "domains"?, "concepts"?}}`` and extras (bank, class_embeddings, fingerprint).

    ``spec`` is a ``.npz`` with ``X_<split>, y_<split>`` (optional ``domains_*``, ``concepts_*``,
    ``class_embeddings``), an EmbeddingStore entry folder (``cbm embed``; labelled rows split
    60/20/20, stratified, seeded), or ``"synthetic"`` for :func:`cbm.data.make_concept_world`.
    """
    if spec == "synthetic":
        from cbm.data import make_concept_world

        world = make_concept_world(random_state=seed)
        splits = {n: {"X": s.X, "y": s.y, "domains": s.domains, "concepts": s.concepts}
                  for n, s in world.splits.items()}
        return splits, {"bank": world.bank, "class_embeddings": world.class_embeddings,
                        "fingerprint": world.encoder_fingerprint}
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        return _load_store(path, seed)
    if not path.is_file():
        raise FileNotFoundError(f"--data {spec!r} does not exist; give a .npz of splits, an "
                                "EmbeddingStore folder, or 'synthetic'.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"--data {spec!r} is not a readable .npz file ({e}).") from None
    splits = {}
    for name in SPLITS:
        if f"X_{name}" in arrays:
            if f"y_{name}" not in arrays:
                raise DataError(f"{spec!r} has X_{name} but no y_{name}; save labels for every split.")
            splits[name] = {k: arrays[f"{k}_{name}"] for k in ("X", "y", "domains", "concepts")
                            if f"{k}_{name}" in arrays}
    if "train" not in splits:
        raise DataError(f"{spec!r} has no X_train/y_train arrays (found: {sorted(arrays)[:8]}).")
    return splits, {"class_embeddings": arrays.get("class_embeddings")}


def _load_store(path: Path, seed: int) -> tuple[dict, dict]:
    """An EmbeddingStore entry folder (``manifest.json``): labelled rows split 60/20/20, stratified."""
    from cbm.data.splits import make_splits
    from cbm.store import EmbeddingCache

    cache = EmbeddingCache(path)  # sizes, and sha256 of files not verified before
    X, y = cache.as_array(np.float32), cache.labels
    if y is None:
        raise DataError(f"Embedding cache {str(path)!r} has no labels; embed a labelled dataset.")
    domains = None if cache.domains is None else np.asarray(cache.domains)
    parts = make_splits(len(y), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed, stratify=y)
    splits = {name: {"X": X[idx], "y": y[idx], **({} if domains is None else {"domains": domains[idx]})}
              for name, idx in parts.items()}
    return splits, {"fingerprint": cache.manifest.get("encoder"),
                    "splits": parts.record()}
