"""Model directories: versioned, validated, written atomically.

Layout::

    MODEL_DIR/
      model.json                 {"format", "method", "current": 3, "versions": [1, 2, 3]}
      v0001/ config.json         method, params, classes, fingerprints, library version, note
             weights.safetensors everything learned (BaseConceptModel.state_tensors)
             base_concepts/      the bank the concept layer was fitted with
             concepts/           the bank the head reads now (after edits)
             metrics.json        optional
      history.json               the edit log (cbm.history)

A new version is written into a hidden temporary folder and renamed into place, then the
pointer file is replaced atomically: an interrupted save leaves the previous version intact.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cbm import __version__
from cbm._io import atomic_write_json, read_json
from cbm.bank import ConceptBank
from cbm.exceptions import CBMError, ModelDirError
from cbm.models import get_model_class

MODEL_FORMAT = "cbmkit-model/1"
POINTER = "model.json"


def version_dirname(v: int) -> str:
    return f"v{v:04d}"


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
    if not (path / POINTER).is_file():
        raise ModelDirError(
            f"{str(path)!r} is not a cbmkit model directory: {POINTER} is missing. "
            "Point to the folder written by `cbm train` or `cbm demo`."
        )
    try:
        info = read_json(path / POINTER, "model pointer")
    except CBMError as e:
        raise ModelDirError(str(e)) from None
    if info.get("format") != MODEL_FORMAT:
        raise ModelDirError(
            f"{str(path / POINTER)!r} has format {info.get('format')!r}; this cbmkit reads "
            f"{MODEL_FORMAT!r}. Retrain the model or use the cbmkit version that wrote it."
        )
    return info


def list_versions(path: str | Path) -> list[int]:
    return list(read_pointer(path)["versions"])


def save_model(
    model,
    path: str | Path,
    *,
    note: str = "",
    metrics: dict[str, Any] | None = None,
    fingerprints: dict[str, Any] | None = None,
) -> int:
    """Save ``model`` as a new version of the model directory ``path``; returns the version number."""
    from safetensors.numpy import save_file

    model._check_fitted()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    info = read_pointer(path) if (path / POINTER).exists() else {
        "format": MODEL_FORMAT, "method": model.method, "current": 0, "versions": [],
    }
    prev = info["versions"][-1] if info["versions"] else None
    version = (max(info["versions"]) if info["versions"] else 0) + 1
    if fingerprints is None and prev is not None:
        fingerprints = read_json(path / version_dirname(prev) / "config.json").get("fingerprints", {})
    config = {
        "format": MODEL_FORMAT,
        "method": model.method,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": _json_params(model),
        "classes": [c.item() if hasattr(c, "item") else c for c in model.classes_],
        "n_features_in": int(model.n_features_in_),
        "fingerprints": fingerprints or {},
        "library_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "version": version,
        "parent": prev,
        "note": note,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{version_dirname(version)}.", dir=path))
    try:
        tensors = {k: np.ascontiguousarray(v) for k, v in model.state_tensors().items()}
        save_file(tensors, str(tmp / "weights.safetensors"))
        model.base_concepts_.save(tmp / "base_concepts")
        model.concepts_.save(tmp / "concepts")
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_json(tmp / "config.json", config)
        tmp.rename(path / version_dirname(version))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info.update(current=version, versions=info["versions"] + [version])
    atomic_write_json(path / POINTER, info)
    return version


def load_config(path: str | Path, version: int | None = None) -> dict[str, Any]:
    info = read_pointer(path)
    version = info["current"] if version is None else int(version)
    if version not in info["versions"]:
        raise ModelDirError(
            f"Model directory {str(path)!r} has no version {version}; versions: {info['versions']}."
        )
    vdir = Path(path) / version_dirname(version)
    try:
        return read_json(vdir / "config.json", "model config")
    except CBMError as e:
        raise ModelDirError(f"{e} The version folder {str(vdir)!r} is incomplete; load another version.") from None


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
    model.model_dir_ = str(path)
    model.version_ = config["version"]
    model.fingerprints_ = config.get("fingerprints", {})
    return model


def load_metrics(path: str | Path, version: int | None = None) -> dict[str, Any]:
    config = load_config(path, version)
    f = Path(path) / version_dirname(config["version"]) / "metrics.json"
    return read_json(f, "metrics") if f.exists() else {}
