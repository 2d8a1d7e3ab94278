"""Model directories: versioned, validated, written atomically.

Layout::

    MODEL_DIR/
      model.json                 {"format", "method", "current": 3, "versions": [1, 2, 3]}
      v0001/ config.json         method, params, classes, fingerprints, library version, note
             weights.safetensors everything learned (BaseConceptModel.state_tensors)
             base_concepts/      the bank the concept layer was fitted with
             concepts/           the bank the head reads now (after edits)
             metrics.json        optional
      history.json               the edit log (cbm.edits.history)

A new version is written into a hidden temporary folder and renamed into place, then the
pointer file is replaced atomically: an interrupted save leaves the previous version intact.

Every read-modify-write of a directory (a save here, an edit in :mod:`cbm.edits.history`) holds an
exclusive lock on ``MODEL_DIR/.lock`` (:func:`model_dir_lock`; the operating system drops it when
a process dies, so a killed process never leaves the directory locked). Under the lock, version
numbers come from the folders on disk (the highest existing plus one), hidden temporary folders
left by killed saves are removed, and a version folder that a killed save had renamed into place
but not yet recorded in ``model.json`` is recorded (:func:`recover`), so the save completes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cbm import __version__
from cbm._io import atomic_write_json, check_fields, read_json
from cbm.bank import ConceptBank
from cbm.exceptions import CBMError, ModelDirError
from cbm.models import get_model_class

MODEL_FORMAT = "cbmkit-model/1"
POINTER = "model.json"
LOCK = ".lock"
#: seconds to wait for another process's lock on a model directory before giving up
LOCK_TIMEOUT = float(os.environ.get("CBM_LOCK_TIMEOUT", 120))

_VERSION_DIR = re.compile(r"v(\d{4,})")
_STALE = re.compile(r"\.v\d{4,}\..+|\.(model|history)\.json\..+\.tmp")
_locks: dict[str, Any] = {}
_locks_guard = threading.Lock()


def version_dirname(v: int) -> str:
    return f"v{v:04d}"


def check_target(path: str | Path) -> Path:
    """Refuse a model directory path that is a file (or lies under one) before any work starts."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == path else f"lies under {str(p)!r}, which is a file"
            raise ModelDirError(f"Model directory {str(path)!r} {what}; pass a folder path (new or existing).")
    return path


@contextmanager
def model_dir_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock of a model directory (re-entrant within a thread, across threads and
    processes exclusive). Raises :class:`ModelDirError` after ``timeout`` seconds (``LOCK_TIMEOUT``)."""
    from filelock import FileLock, Timeout

    path = Path(path)
    key = str(path.resolve() / LOCK)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = FileLock(key, thread_local=True)
    wait = LOCK_TIMEOUT if timeout is None else timeout
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise ModelDirError(
            f"Model directory {str(path)!r} has been locked by another cbm process or thread for {wait:g} s "
            f"(lock file {key!r}); wait for it to finish, or stop it and retry. "
            "Set CBM_LOCK_TIMEOUT to wait longer."
        ) from None
    except OSError as e:
        raise ModelDirError(
            f"Cannot lock model directory {str(path)!r} ({e.strerror or e}); it must be writable to change it."
        ) from None
    try:
        yield
    finally:
        lock.release()


def disk_versions(path: str | Path) -> list[int]:
    """Version numbers of the ``vNNNN`` folders on disk (recorded in the pointer or not)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(int(m.group(1)) for p in path.iterdir() if (m := _VERSION_DIR.fullmatch(p.name)) and p.is_dir())


def recover(path: str | Path) -> list[str]:
    """Finish or clean up saves that a killed process left behind; call with the lock held.

    Removes hidden temporary folders and files, and records in ``model.json`` a version folder
    renamed into place by a save that died before updating the pointer (it is complete: the rename
    is a save's last step before the pointer). Returns what was done, one line each.
    """
    path = Path(path)
    done = []
    for p in path.iterdir():
        if _STALE.fullmatch(p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            done.append(f"removed the temporary {p.name!r} of an interrupted save")
    fresh = not (path / POINTER).is_file()
    info = {"format": MODEL_FORMAT, "method": None, "current": 0, "versions": []} if fresh else read_pointer(path)
    listed = set(info["versions"])
    orphans = [v for v in disk_versions(path) if v not in listed]
    if orphans and max(orphans) > max(listed, default=0):
        v = max(orphans)
        try:
            config = _read_config(path, v)
        except ModelDirError:
            config = None
        if config is not None and config.get("parent") == (info["current"] or None):
            info.update(current=v, versions=sorted(listed | {v}), method=info["method"] or config["method"])
            atomic_write_json(path / POINTER, info)
            done.append(f"recorded version {v}, written by a save that was interrupted before it updated {POINTER}")
    return done


def _json_params(model) -> dict[str, Any]:
    params = {}
    for k, v in model.get_params(deep=False).items():
        if k == "concepts":
            continue
        try:
            json.dumps(v)
        except TypeError:
            continue  # arrays and objects are learned state or fit inputs, not config
        params[k] = v
    return params


def read_pointer(path: str | Path) -> dict[str, Any]:
    """The model directory's pointer file, validated."""
    path = Path(path)
    if not path.exists():
        raise ModelDirError(
            f"Model directory {str(path)!r} does not exist. Train one with `cbm train` or `cbm demo`."
        )
    if not path.is_dir():
        raise ModelDirError(f"{str(path)!r} is a file, not a model directory; point to the folder written "
                            "by `cbm train` or `cbm demo`.")
    if not (path / POINTER).is_file():
        raise ModelDirError(
            f"{str(path)!r} is not a cbmkit model directory: {POINTER} is missing. "
            "Point to the folder written by `cbm train` or `cbm demo`."
        )
    where = f"model pointer {str(path / POINTER)!r}"
    try:
        info = check_fields(read_json(path / POINTER, "model pointer"), where, {"format": str})
        if info["format"] != MODEL_FORMAT:
            raise ModelDirError(
                f"{str(path / POINTER)!r} has format {info.get('format')!r}; this cbmkit reads "
                f"{MODEL_FORMAT!r}. Retrain the model or use the cbmkit version that wrote it."
            )
        check_fields(info, where, {"method": str, "current": int, "versions": list})
        versions = info["versions"]
        if not all(type(v) is int and v > 0 for v in versions) or len(set(versions)) != len(versions):
            raise ModelDirError(f"{where}: 'versions' should list distinct positive integers; got {versions!r:.80}.")
        if info["current"] not in versions and (versions or info["current"] != 0):
            raise ModelDirError(f"{where}: current version {info['current']} is not among versions {versions}.")
    except ModelDirError:
        raise
    except CBMError as e:
        raise ModelDirError(f"{e} It is the model directory's pointer; without a backup, retrain.") from None
    return info


def list_versions(path: str | Path) -> list[int]:
    """The saved versions of a model directory, oldest first."""
    return list(read_pointer(path)["versions"])


def save_model(
    model,
    path: str | Path,
    *,
    note: str = "",
    metrics: dict[str, Any] | None = None,
    fingerprints: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Save ``model`` as a new version of the model directory ``path``; returns the version number.

    Holds the directory's lock; the version number is the highest on disk plus one. ``extra``
    adds fields to the version's ``config.json`` (the edit history records its edits there).
    """
    # scikit-learn is loaded by the fit already; importing it here keeps `import cbm.io` light
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, msg="This %(name)s is not fitted yet; call fit(X, y) first.")
    path = check_target(path)
    path.mkdir(parents=True, exist_ok=True)
    with model_dir_lock(path):
        recover(path)
        info = read_pointer(path) if (path / POINTER).exists() else {
            "format": MODEL_FORMAT, "method": model.method, "current": 0, "versions": [],
        }
        version = max([0, *info["versions"], *disk_versions(path)]) + 1
        prev = info["current"] or None
        if fingerprints is None and prev is not None:
            fingerprints = load_config(path, prev).get("fingerprints", {})
        config = {
            "format": MODEL_FORMAT,
            "method": model.method,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "params": _json_params(getattr(model, "concept_model_", model)),
            "classes": [c.item() if hasattr(c, "item") else c for c in model.classes_],
            "n_features_in": int(model.n_features_in_),
            "fingerprints": fingerprints or {},
            "library_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "version": version,
            "parent": prev,
            "note": note,
            **({"multilabel": True} if getattr(model, "multilabel_", False) else {}),
            **(extra or {}),
        }
        _write_version(model, path, version, config, metrics)
        info.update(current=version, versions=[*info["versions"], version])
        atomic_write_json(path / POINTER, info)
    return version


def _write_version(model, path: Path, version: int, config: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    """Write a version into a hidden temporary folder, then rename it into place."""
    from safetensors.numpy import save_file

    tmp = Path(tempfile.mkdtemp(prefix=f".{version_dirname(version)}.", dir=path))
    try:
        tensors = {k: np.ascontiguousarray(v) for k, v in model.state_tensors().items()}
        save_file(tensors, str(tmp / "weights.safetensors"))
        model.base_concepts_.save(tmp / "base_concepts")
        model.concepts_.save(tmp / "concepts")
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_json(tmp / "config.json", config)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes owner-only folders; keep the usual permissions
        tmp.rename(path / version_dirname(version))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_config(path: str | Path, version: int) -> dict[str, Any]:
    vdir = Path(path) / version_dirname(version)
    where = f"model config {str(vdir / 'config.json')!r}"
    try:
        config = check_fields(
            read_json(vdir / "config.json", "model config"), where,
            {"method": str, "params": dict, "classes": list, "n_features_in": int, "version": int},
            {"fingerprints": dict, "parent": (int, type(None)), "note": str},
        )
    except CBMError as e:
        raise ModelDirError(f"{e} The version folder {str(vdir)!r} is incomplete or damaged; load another "
                            "version.") from None
    if config["version"] != version:
        raise ModelDirError(f"{where} says it is version {config['version']}, but it lies in the folder of "
                            f"version {version}; the folder was renamed or copied by hand.")
    return config


def load_config(path: str | Path, version: int | None = None) -> dict[str, Any]:
    """The ``config.json`` of a version (default: the current one), validated."""
    info = read_pointer(path)
    version = info["current"] if version is None else int(version)
    if version not in info["versions"]:
        raise ModelDirError(
            f"Model directory {str(path)!r} has no version {version}; versions: {info['versions']}."
        )
    return _read_config(path, version)


def load_model(path: str | Path, version: int | None = None):
    """Load a model directory (the current version, or ``version``). Predictions match the saved model."""
    from safetensors.numpy import load_file

    config = load_config(path, version)
    vdir = Path(path) / version_dirname(config["version"])
    cls = get_model_class(config["method"])
    params = {k: v for k, v in config["params"].items() if k in cls().get_params(deep=False)}
    model = cls(**params)
    weights = vdir / "weights.safetensors"
    try:
        tensors = load_file(str(weights))
    except FileNotFoundError:
        raise ModelDirError(f"{str(weights)!r} is missing; the model version is incomplete.") from None
    except Exception as e:
        raise ModelDirError(f"{str(weights)!r} is corrupt ({e}); load an earlier version.") from None
    base = ConceptBank.load(vdir / "base_concepts")
    if "concepts" in model.get_params(deep=False):
        model.set_params(concepts=base)
    model.load_state_tensors(
        tensors, classes=config["classes"], base_concepts=base,
        concepts=ConceptBank.load(vdir / "concepts"), n_features_in=config["n_features_in"],
    )
    if config.get("multilabel"):  # one sigmoid per finding on the saved concept layer
        from cbm.models.multilabel import MultiLabelCBM

        model = MultiLabelCBM.from_concept_model(model)
    model.model_dir_ = str(path)
    model.version_ = config["version"]
    model.fingerprints_ = config.get("fingerprints", {})
    return model


def load_metrics(path: str | Path, version: int | None = None) -> dict[str, Any]:
    """The ``metrics.json`` of a version (``{}`` when it has none), validated."""
    config = load_config(path, version)
    f = Path(path) / version_dirname(config["version"]) / "metrics.json"
    if not f.exists():
        return {}
    try:
        return check_fields(read_json(f, "metrics"), f"metrics file {str(f)!r}", {})
    except CBMError as e:
        raise ModelDirError(f"{e} Delete it or retrain to recompute the metrics.") from None
