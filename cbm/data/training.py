"""Embeddings split for training and evaluation, from the formats ``cbm train`` and ``cbm eval`` accept.

Labels come out as class *names* whenever the source knows them (image folder names, manifest
labels, the synthetic world's classes, an ``.npz``'s ``class_names``), so models, banks and
explanations agree by name, never by position.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cbm.data.evalfile import read_arrays
from cbm.data.splits import make_splits
from cbm.data.synthetic import make_concept_world
from cbm.exceptions import DataError
from cbm.store import EmbeddingCache

SPLITS = ("train", "val", "test", "shifted")


def load_training_data(spec: str | Path, seed: int = 0, *, require_train: bool = True
                       ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Splits ``{name: {"X", "y", "domains"?, "concepts"?}}`` and extras.

    ``spec`` is a ``.npz`` with ``X_<split>, y_<split>`` (optional ``domains_*``, ``concepts_*``,
    ``ids_*``, ``class_names`` decoding integer labels, ``class_embeddings`` in ``class_names``
    order; a 2-D 0/1 ``y_<split>`` (N, L) is a multi-label indicator matrix whose columns
    ``class_names`` names, extras ``findings``), an EmbeddingStore entry folder (``cbm embed``; labelled rows split 60/20/20, stratified,
    seeded), or ``"synthetic"`` for :func:`cbm.data.make_concept_world`. The evaluation ``data.npz``
    that ``cbm train`` writes beside a model has no train split: pass ``require_train=False``.

    Extras: ``bank`` (synthetic), ``class_embeddings`` (rows in sorted class-name order, the order of
    a fitted model's ``classes_``), ``fingerprint`` (the image encoder's), ``encoder`` (its spec, to
    rebuild it, or the fingerprint when no spec is known), ``classes`` and ``splits``.
    """
    if spec == "synthetic":
        world = make_concept_world(random_state=seed)
        names = np.asarray(world.class_names)
        splits = {n: {"X": s.X, "y": names[s.y], "domains": s.domains, "concepts": s.concepts}
                  for n, s in world.splits.items()}
        return splits, {"bank": world.bank, "fingerprint": world.encoder_fingerprint,
                        "encoder": world.encoder_fingerprint, "classes": list(world.class_names),
                        "class_embeddings": _sorted_rows(world.class_embeddings, world.class_names)}
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        return _load_store(path, seed)
    if not path.is_file():
        raise FileNotFoundError(f"--data {spec!r} does not exist; give a .npz of splits, an "
                                "EmbeddingStore folder, or 'synthetic'.")
    arrays = read_arrays(path, f"--data {spec!r}")
    names = arrays["class_names"].astype(str) if "class_names" in arrays else None
    splits = {}
    for name in SPLITS:
        if f"X_{name}" in arrays:
            if f"y_{name}" not in arrays:
                raise DataError(f"{spec!r} has X_{name} but no y_{name}; save labels for every split.")
            splits[name] = {k: arrays[f"{k}_{name}"] for k in ("X", "y", "domains", "concepts", "ids")
                            if f"{k}_{name}" in arrays}
            splits[name]["y"] = _decode(splits[name]["y"], names, f"{spec!r} y_{name}")
    if require_train and "train" not in splits:
        raise DataError(f"{spec!r} has no X_train/y_train arrays (found: {sorted(arrays)[:8]}).")
    if not splits:
        raise DataError(f"{spec!r} has no X_<split>/y_<split> arrays (found: {sorted(arrays)[:8]}); "
                        f"expected some of {', '.join(SPLITS)}.")
    emb = arrays.get("class_embeddings")
    if emb is not None and names is not None and len(emb) == len(names):
        emb = _sorted_rows(emb, names)
    fp = str(arrays["encoder"]) if "encoder" in arrays else None
    extras = {"class_embeddings": emb, "fingerprint": fp, "encoder": fp,
              "classes": None if names is None else list(names)}
    if any(np.ndim(s["y"]) == 2 for s in splits.values()):
        if not all(np.ndim(s["y"]) == 2 for s in splits.values()):
            raise DataError(f"{spec!r} mixes multi-label (2-D) and single-label (1-D) y_<split> arrays; "
                            "give every split the same kind of labels.")
        width = next(iter(splits.values()))["y"].shape[1]
        extras["findings"] = list(names) if names is not None else [str(j) for j in range(width)]
        extras["class_embeddings"] = None
    return splits, extras


def _decode(y: np.ndarray, names: np.ndarray | None, what: str) -> np.ndarray:
    """Integer labels as class names (through ``names``); names pass through as str."""
    if y.ndim == 2:  # multi-label: an indicator matrix, its columns named by ``names``
        return _indicator(y, names, what)
    if names is None or y.dtype.kind not in "iu":
        return y.astype(str) if y.dtype.kind in "SUO" else y
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise DataError(f"{what} has label {int(y.max())} but class_names has only {len(names)} names.")
    return names[y]


def _indicator(y: np.ndarray, names: np.ndarray | None, what: str) -> np.ndarray:
    """A multi-label target: a 0/1 matrix (N, L) whose L columns ``class_names`` names."""
    if y.shape[1] == 0:
        raise DataError(f"{what} is a multi-label indicator matrix with no finding columns (shape "
                        f"{y.shape}); give one 0/1 column per finding.")
    if names is not None and len(names) != y.shape[1]:
        raise DataError(f"{what} is a multi-label indicator matrix with {y.shape[1]} columns, but "
                        f"class_names has {len(names)} names; give one name per finding column.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise DataError(f"{what} is 2-D, so it is read as a multi-label indicator matrix, but it holds "
                        f"{y[~np.isin(y, (0, 1))].ravel()[0]!r}; use 0 (absent) and 1 (present).")
    return y.astype(np.int8)


def _sorted_rows(rows: np.ndarray, names: Any) -> np.ndarray:
    """Rows given in ``names`` order, re-ordered to sorted names (the order of ``classes_``)."""
    names = [str(n) for n in names]
    return np.asarray(rows)[np.argsort(np.asarray(names), kind="stable")]


def fit_arguments(model: Any, splits: Mapping[str, Mapping[str, Any]], extras: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """The fit-time extras ``model.fit`` takes, from splits ``{name: {"X", "y", "concepts"?}}`` and extras
    as :func:`load_training_data` gives them: the validation split, per-image concept labels, class text
    embeddings (those the model's :meth:`~cbm.models.BaseConceptModel.fit_param_names` lists)."""
    accepted = model.fit_param_names()
    out = {}
    if "X_val" in accepted and "val" in splits:
        out.update(X_val=splits["val"]["X"], y_val=splits["val"]["y"])
    if "concept_labels" in accepted and "concepts" in splits["train"]:
        out["concept_labels"] = splits["train"]["concepts"]
    if "class_embeddings" in accepted and extras.get("class_embeddings") is not None \
            and getattr(model, "class_embeddings", None) is None:
        out["class_embeddings"] = extras["class_embeddings"]
    return out


def encoder_record(extras: Mapping[str, Any]) -> Any:
    """What a model records as its encoder: the spec (rebuildable) or else the fingerprint string."""
    return extras.get("encoder") or extras.get("fingerprint")


def _load_store(path: Path, seed: int) -> tuple[dict, dict]:
    """An EmbeddingStore entry folder (``manifest.json``): labelled rows split 60/20/20, stratified."""

    cache = EmbeddingCache(path)  # sizes, and sha256 of files not verified before
    X, y = cache.as_array(np.float32), cache.labels
    if y is None:
        raise DataError(f"Embedding cache {str(path)!r} has no labels; embed a labelled dataset.")
    classes = [str(c) for c in cache.manifest.get("classes") or []]
    if classes:
        y = _decode(np.asarray(y), np.asarray(classes), f"embedding cache {str(path)!r}")
    domains = None if cache.domains is None else np.asarray(cache.domains)
    ids = np.asarray(cache.ids)
    parts = make_splits(len(y), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed, stratify=y)
    splits = {name: {"X": X[idx], "y": y[idx], "ids": ids[idx],
                     **({} if domains is None else {"domains": domains[idx]})}
              for name, idx in parts.items()}
    fp = cache.manifest.get("encoder")
    spec = cache.manifest.get("encoder_spec")
    return splits, {"fingerprint": fp, "encoder": spec if isinstance(spec, dict) else fp,
                    "classes": classes or None, "splits": parts.record()}


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(X, y or None, encoder fingerprint or None)`` from an embedding cache folder (``cbm embed``;
    labels as class names), a ``.npz`` with ``X`` and optional ``y`` (``class_names`` decode
    integer labels), or a ``.npy`` array."""
    path = Path(path)
    if path.is_dir():
        cache = EmbeddingCache(path)  # shards checked by sha256 once per file state
        y, classes = cache.labels, cache.manifest.get("classes") or []
        if y is not None and classes:
            y = np.asarray([str(c) for c in classes])[y]
        return cache.as_array(np.float32), y, cache.manifest.get("encoder")
    if not path.is_file():
        raise FileNotFoundError(f"Embeddings {str(path)!r} not found; give an embedding cache folder "
                                "(`cbm embed` prints it), a .npz with X and y, or a .npy array.")
    if path.suffix == ".npy":
        return np.load(path), None, None
    z = read_arrays(path, f"Embeddings {str(path)!r}")
    if "X" not in z:
        raise DataError(f"{str(path)!r} has no array 'X' (found {list(z)[:8]}); save X (N, d) and y (N,).")
    X, y = z["X"], z.get("y")
    if y is not None and "class_names" in z and y.dtype.kind in "iu":
        y = z["class_names"].astype(str)[y]
    return X, y, (str(z["encoder"]) if "encoder" in z else None)
