"""The evaluation-data file: the ``.npz`` that ``cbm train``, ``cbm demo`` and ``ConceptWorld.save_npz``
write and that the app, ``cbm edit``, ``cbm eval``, ``cbm explain`` and refitting edits read.

Arrays are stored per split as ``<key>_<split>`` (``X``, ``y``, optional ``domains``, ``ids``,
``images``, ``concept_labels``, ...) plus ``class_names`` and, when known, ``encoder`` (the image
encoder's fingerprint) and ``encoder_spec`` (a JSON string: how to rebuild it); no pickles; written
atomically. Split names are free text: ``train``, ``val``, ``test``, ``shifted``, ``test@siteA``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import atomic_path
from cbm.encoders.record import EncoderRecord
from cbm.exceptions import DataError, unknown_name_message


def save_eval_data(path: str | Path, splits: Mapping[str, Mapping[str, Any]],
                   class_names: Iterable[str] | None = None, encoder: Any = None) -> Path:
    """Write evaluation splits as the ``.npz`` that the app, ``cbm edit`` and ``cbm explain`` read.

    ``splits`` maps a split name to arrays ``X`` (N, d) and ``y`` (N,), optionally ``domains``,
    ``ids``, ``images`` (uint8 thumbnails) and any other per-sample array; they are stored as
    ``<key>_<split>``. ``encoder`` (an encoder spec dict, or a fingerprint string) is stored as
    ``encoder_spec`` (JSON) and ``encoder`` (the fingerprint). No pickles; written atomically.
    """
    arrays: dict[str, np.ndarray] = {}
    if class_names is not None:
        arrays["class_names"] = np.asarray([str(c) for c in class_names])
    record = EncoderRecord.read(encoder or None)
    if isinstance(encoder, Mapping | EncoderRecord):
        arrays["encoder_spec"] = np.asarray(json.dumps(record.to_dict(), sort_keys=True))
    if record is not None and record.fingerprint:
        arrays["encoder"] = np.asarray(record.fingerprint)
    for name, split in splits.items():
        if "X" not in split or "y" not in split:
            raise DataError(f"Split {name!r} needs arrays 'X' and 'y'; got {sorted(split)}.")
        for key, value in split.items():
            arr = np.asarray(value)
            if arr.dtype.kind == "O":
                arr = arr.astype(str)
            arrays[f"{key}_{name}"] = arr.astype(np.float32) if key == "X" else arr
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


#: Display and search order of evaluation splits: in-domain test data first, then the shifted domain.
SPLIT_ORDER = ("test", "shifted", "val", "train")


def load_eval_data(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Every split of an evaluation ``.npz`` as ``{split: {"X", "y", "domains"?, "ids"?, "images"?, ...}}``.

    Splits come in :data:`SPLIT_ORDER` (others after, by name); integer labels are decoded through
    ``class_names`` when the file has them; ``X`` is float32. The inverse of :func:`save_eval_data`.
    """
    arrays = read_arrays(path)
    names = [k[2:] for k in arrays if k.startswith("X_") and f"y_{k[2:]}" in arrays]
    _check_shapes(arrays, names, path)
    names.sort(key=lambda n: (SPLIT_ORDER.index(n) if n in SPLIT_ORDER else len(SPLIT_ORDER), n))
    classes = arrays["class_names"].astype(str) if "class_names" in arrays else None
    owner: dict[str, str] = {}  # each array to the longest split name it ends with ("X_test@a_test")
    for n in sorted(names, key=len):
        owner.update({k: n for k in arrays if k.endswith(f"_{n}")})
    out = {}
    for n in names:
        split = {k[: -len(n) - 1]: v for k, v in arrays.items() if owner.get(k) == n}
        split["X"] = split["X"].astype(np.float32)
        y = split["y"]
        if y.ndim == 2:  # a multi-label indicator matrix (columns: the findings in class_names)
            split["y"] = y.astype(np.int8)
        else:
            split["y"] = classes[y] if classes is not None and y.dtype.kind in "iu" else y.astype(str)
        out[n] = split
    return out


def _check_shapes(arrays: dict[str, np.ndarray], names: list[str], path: str | Path) -> None:
    """One DataError naming the file and the array for a split whose arrays cannot be what they claim."""
    classes = arrays.get("class_names")
    if classes is not None and classes.ndim != 1:
        raise DataError(f"Evaluation data {str(path)!r}: class_names must be a list of names; got shape {classes.shape}.")
    for n in names:
        X, y = arrays[f"X_{n}"], arrays[f"y_{n}"]
        problem = None
        if X.ndim not in (2, 3) or X.dtype.kind not in "fiub":  # (N, d), or (N, T, d) patch tokens
            problem = (f"X_{n} must be a numeric (N, d) matrix (or (N, T, d) patch tokens); got {X.dtype} "
                       f"of shape {X.shape}")
        elif y.ndim not in (1, 2) or len(y) != len(X):
            problem = f"y_{n} must hold one label (or label row) per row of X_{n} ({len(X)}); got shape {y.shape}"
        elif y.ndim == 1 and y.dtype.kind in "iu" and classes is not None and len(y) and not (
                0 <= y.min() and y.max() < len(classes)):
            problem = f"y_{n} indexes class_names, which has {len(classes)}; got values {y.min()}..{y.max()}"
        elif y.ndim == 2 and y.dtype.kind not in "iub":
            problem = f"y_{n} as a multi-label matrix must be 0/1 integers; got {y.dtype}"
        for key in (f"ids_{n}", f"domains_{n}"):
            if problem is None and key in arrays and (arrays[key].ndim != 1 or len(arrays[key]) != len(X)):
                problem = f"{key} must hold one entry per row of X_{n} ({len(X)}); got shape {arrays[key].shape}"
        if problem:
            raise DataError(f"Evaluation data {str(path)!r}: {problem}. Write it again with `cbm train` or "
                            "save_eval_data.")


def read_arrays(path: str | Path, what: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an evaluation-format ``.npz`` by its stored name (``X_test``, ``class_names`` ...),
    as stored; no pickles. ``what`` names the file in messages (default "Evaluation data 'PATH'")."""
    path = _npz(path)
    what = what or f"Evaluation data {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{what} cannot be read as a .npz file ({e}); write it again with "
                        "`cbm train` or save_eval_data.") from None


def npz_splits(path: str | Path) -> list[str]:
    """Split names in an evaluation ``.npz`` (those with both ``X_<split>`` and ``y_<split>``)."""
    with _open_npz(path) as z:
        return [k[2:] for k in z.files if k.startswith("X_") and f"y_{k[2:]}" in z.files]


def _open_npz(path: str | Path):
    """``np.load`` of an evaluation ``.npz``: an empty, truncated or non-.npz file is one DataError naming it."""
    path = _npz(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"Evaluation data {str(path)!r} cannot be read as a .npz file ({e}); write it again "
                        "with `cbm train` or save_eval_data.") from None


def _npz(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Evaluation data {str(path)!r} not found; pass the .npz written by `cbm train` "
                        "(arrays X_<split>, y_<split>, optional domains_<split>, ids_<split>).")
    return path


def read_sample(path: str | Path, sample: str, split: str | None = None) -> tuple[str, int, np.ndarray, Any]:
    """One sample of an evaluation ``.npz`` by id (``ids_<split>``) or row number.

    Returns ``(split, row, x (d,), label)``; ``split=None`` searches test, shifted, val, train.
    """
    try:  # arrays are read lazily: a damaged member or a wrong shape shows up here, not at np.load
        return _read_sample(path, sample, split)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, IndexError, TypeError) as e:
        raise DataError(f"Evaluation data {str(path)!r} cannot be read ({type(e).__name__}: {e}); write it again "
                        "with `cbm train` or save_eval_data.") from None


def _read_sample(path: str | Path, sample: str, split: str | None) -> tuple[str, int, np.ndarray, Any]:
    with _open_npz(path) as z:
        have = [k[2:] for k in z.files if k.startswith("X_")]
        order = [split] if split else [s for s in SPLIT_ORDER if s in have] + \
            [s for s in have if s not in SPLIT_ORDER]
        for s in order:
            if s not in have:
                raise DataError(unknown_name_message("split", s, have) + f" (in {str(path)!r})")
            ids = z[f"ids_{s}"].astype(str) if f"ids_{s}" in z.files else None
            hit = np.flatnonzero(ids == str(sample)) if ids is not None else []
            if not len(hit) and str(sample).isdigit() and int(sample) < len(z[f"X_{s}"]):
                hit = [int(sample)]
            if len(hit):
                i = int(hit[0])
                y = z[f"y_{s}"][i] if f"y_{s}" in z.files else None
                if y is not None and "class_names" in z.files and np.ndim(y) == 1:  # findings
                    y = [str(n) for n, v in zip(z["class_names"].astype(str), y, strict=True) if v]
                elif y is not None and "class_names" in z.files and np.asarray(y).dtype.kind in "iu":
                    y = z["class_names"].astype(str)[int(y)]
                return s, i, z[f"X_{s}"][i].astype(np.float32), y
    raise DataError(f"No sample {sample!r} in {str(path)!r} (splits searched: {order}); give an id from "
                    "ids_<split> or a row number.")


__all__ = ["SPLIT_ORDER", "load_eval_data", "npz_splits", "read_arrays", "read_sample", "save_eval_data"]
