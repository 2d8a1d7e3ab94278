"""Embeddings split for training and evaluation, from the formats ``cbm train`` and ``cbm eval`` accept.

Labels come out as class *names* whenever the source knows them (image folder names, manifest
labels, the synthetic world's classes, an ``.npz``'s ``class_names``), so models, banks and
explanations agree by name, never by position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cbm.data.evalfile import read_arrays
from cbm.data.splits import Splits, make_splits
from cbm.data.synthetic import make_concept_world
from cbm.exceptions import DataError
from cbm.store import EmbeddingCache

SPLITS = ("train", "val", "test", "shifted")
#: Manifest split values read as cbm's split names (compared in lower case); others are kept as written.
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "dev": "val", "testing": "test"}
#: Held-out splits of data with sites are named ``<split>@<site>`` (``test@siteA``); train and val are not.
SITE_SEP = "@"
#: Fractions of the random split used when a cache's manifest had no ``split`` column.
RANDOM_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def load_training_data(spec: str | Path, seed: int = 0, *, require_train: bool = True
                       ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Splits ``{name: {"X", "y", "domains"?, "concepts"?}}`` and extras.

    ``spec`` is a ``.npz`` with ``X_<split>, y_<split>`` (optional ``domains_*``, ``concepts_*``,
    ``ids_*``, ``class_names`` decoding integer labels, ``class_embeddings`` in ``class_names``
    order; a 2-D 0/1 ``y_<split>`` (N, L) is a multi-label indicator matrix whose columns
    ``class_names`` names, extras ``findings``; ``encoder_spec``, a JSON string, records the encoder
    that made ``X``, ``encoder`` its fingerprint; any ``<split>`` name is read, ``test@siteA`` too),
    an EmbeddingStore entry folder (``cbm embed``: the manifest's ``split`` column gives the splits,
    values train, val, test or any other name; without one, labelled rows are split 60/20/20 at
    random, stratified, seeded, and ``extras["splits"]["source"]`` is ``"random"``; with a site
    column, held-out splits other than train and val are divided by site as ``<split>@<site>``),
    or ``"synthetic"`` for :func:`cbm.data.make_concept_world`. ``require_train=False`` accepts data
    without a train split (evaluation).

    Extras: ``bank`` (synthetic), ``class_embeddings`` (rows in sorted class-name order, the order of
    a fitted model's ``classes_``), ``fingerprint`` (the image encoder's), ``encoder`` (its spec, to
    rebuild it, or the fingerprint when no spec is known), ``classes`` and ``splits`` (how the
    splits were made: ``source``, ``sizes``, ``train_sites``).
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
        return _load_store(path, seed, require_train)
    if not path.is_file():
        raise FileNotFoundError(f"--data {spec!r} does not exist; give a .npz of splits, an "
                                "EmbeddingStore folder, or 'synthetic'.")
    arrays = read_arrays(path, f"--data {spec!r}")
    names = arrays["class_names"].astype(str) if "class_names" in arrays else None
    splits = {}
    found = [k[2:] for k in arrays if k.startswith("X_")]
    for name in sorted(found, key=lambda n: (SPLITS.index(n) if n in SPLITS else len(SPLITS), n)):
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
    record, fp = _npz_encoder(arrays, spec)
    extras = {"class_embeddings": emb, "fingerprint": fp, "encoder": record,
              "classes": None if names is None else list(names)}
    if "train" in splits and "domains" in splits["train"]:
        extras["splits"] = {"source": "npz", "sizes": {n: int(len(sp["y"])) for n, sp in splits.items()},
                            "train_sites": sorted({str(d) for d in splits["train"]["domains"]})}
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


def _npz_encoder(arrays: Mapping[str, np.ndarray], spec: str) -> tuple[Any, str | None]:
    """``(record, fingerprint)`` of the encoder a ``.npz`` names: ``encoder_spec`` (a JSON string, the
    spec ``cbm embed`` keeps: name, pretrained, fingerprint, options) and/or ``encoder`` (the fingerprint)."""
    fp = str(arrays["encoder"]) if "encoder" in arrays else None
    if "encoder_spec" not in arrays:
        return fp, fp
    try:
        record = json.loads(str(arrays["encoder_spec"]))
    except json.JSONDecodeError as e:
        raise DataError(f"{spec!r} has an 'encoder_spec' that is not JSON ({e.msg}); store the encoder's spec "
                        "as a JSON string, e.g. the 'encoder_spec' of the embedding cache's manifest.json.") from None
    if not isinstance(record, dict) or not record.get("name"):
        raise DataError(f"{spec!r} has an 'encoder_spec' without a 'name' ({str(arrays['encoder_spec'])[:80]!r}); "
                        'store {"name": ..., "pretrained": ..., "fingerprint": ...} as a JSON string.')
    spec_fp = record.get("fingerprint")
    if fp and spec_fp and str(spec_fp) != fp:
        raise DataError(f"{spec!r} names two encoders: 'encoder' is {fp!r} but 'encoder_spec' has fingerprint "
                        f"{spec_fp!r}; keep the one that embedded X.")
    return record, fp or (None if spec_fp is None else str(spec_fp))


def _named_splits(names: list[str], ids: np.ndarray, where: str, require_train: bool) -> dict[str, np.ndarray]:
    """Row indices of each split a manifest's ``split`` column names (aliases read as train/val/test)."""
    names_arr = np.asarray([SPLIT_ALIASES.get(n.strip().lower(), n.strip()) for n in names])
    empty = np.flatnonzero(names_arr == "")
    if len(empty):
        raise DataError(f"{len(empty)} row(s) of {where} have no split (e.g. {str(ids[empty[0]])!r}); give every "
                        "manifest row a split (train, val, test, ...) or leave the column out, then run "
                        "`cbm embed` again.")
    present = sorted(set(names_arr.tolist()), key=lambda n: (SPLITS.index(n) if n in SPLITS else len(SPLITS), n))
    if require_train and "train" not in present:
        raise DataError(f"The split column of {where} names no 'train' rows (it has {present}); mark the "
                        "training images split=train in the manifest and run `cbm embed` again.")
    bad = [n for n in present if SITE_SEP in n]
    if bad:
        raise DataError(f"Split {bad[0]!r} in {where} contains {SITE_SEP!r}, which cbm uses for "
                        f"<split>{SITE_SEP}<site>; rename it in the manifest.")
    return {n: np.flatnonzero(names_arr == n) for n in present}


def _load_store(path: Path, seed: int, require_train: bool = True) -> tuple[dict, dict]:
    """An EmbeddingStore entry folder (``manifest.json``): the manifest's splits, or a random one."""

    cache = EmbeddingCache(path)  # sizes, and sha256 of files not verified before
    X, y = cache.as_array(np.float32), cache.labels
    where = f"embedding cache {str(path)!r}"
    if y is None:
        raise DataError(f"Embedding cache {str(path)!r} has no labels; embed a labelled dataset.")
    classes = [str(c) for c in cache.manifest.get("classes") or []]
    if classes:
        y = _decode(np.asarray(y), np.asarray(classes), where)
    domains = None if cache.domains is None else np.asarray(cache.domains)
    ids = np.asarray(cache.ids)
    if domains is not None and (domains == "").any():
        first = str(ids[np.flatnonzero(domains == "")[0]])
        raise DataError(f"{int((domains == '').sum())} row(s) of {where} have no site (e.g. {first!r}); give "
                        "every manifest row a site (or leave the column out), then run `cbm embed` again.")
    if cache.splits is None:
        parts = make_splits(len(y), RANDOM_FRACTIONS, seed=seed, stratify=y)
        record = {"source": "random", **parts.record()}
    else:
        parts = _named_splits(cache.splits, ids, where, require_train)
        record = {"source": "manifest", **Splits(parts, seed, {}, False).record()}
        del record["seed"], record["fractions"], record["stratified"]
    splits = {}
    for name, idx in parts.items():
        sites = [None] if domains is None or name in ("train", "val") else sorted(set(domains[idx].tolist()))
        for site in sites:
            rows = idx if site is None else idx[domains[idx] == site]
            splits[name if site is None else f"{name}{SITE_SEP}{site}"] = {
                "X": X[rows], "y": y[rows], "ids": ids[rows], **({} if domains is None else {"domains": domains[rows]})}
    record["sizes"] = {n: int(len(sp["y"])) for n, sp in splits.items()}
    if domains is not None and "train" in splits:
        record["train_sites"] = sorted(set(splits["train"]["domains"].tolist()))
    fp = cache.manifest.get("encoder")
    spec = cache.manifest.get("encoder_spec")
    return splits, {"fingerprint": fp, "encoder": spec if isinstance(spec, dict) else fp,
                    "classes": classes or None, "splits": record}


def split_note(spec: Any, extras: Mapping[str, Any]) -> str | None:
    """The line that says a random split was made (no ``split`` column in the manifest), or None."""
    record = extras.get("splits") or {}
    if record.get("source") != "random":
        return None
    fractions = "/".join(f"{round(100 * f)}" for f in record.get("fractions", RANDOM_FRACTIONS).values())
    return (f"note: {str(spec)!r} has no split column (its manifest had none), so it was split "
            f"{fractions} ({', '.join(record.get('fractions', RANDOM_FRACTIONS))}) at random, stratified by "
            f"class, --seed {record.get('seed')}; add a 'split' column (train/val/test) to the manifest and "
            "run `cbm embed` again to choose the splits.")


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
