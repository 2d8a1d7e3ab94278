"""Atomic file writes: a crash mid-write never leaves a half file that is read as valid."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cbm.exceptions import DataError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; keep the usual permissions
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON, raising one :class:`~cbm.exceptions.DataError` that names the file on any error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} not found: {str(path)!r}.") from None
    except IsADirectoryError:
        raise DataError(f"{what} {str(path)!r} is a folder, not a file.") from None
    except OSError as e:
        raise DataError(f"{what} {str(path)!r} cannot be read ({e.strerror or e}).") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(
            f"{what} {str(path)!r} is not text (binary content at byte {_bad_byte(raw)}); "
            "restore it from a backup or recreate it."
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{what} {str(path)!r} is not valid JSON ({e.msg} at line {e.lineno}); "
            "restore it from a backup or recreate it."
        ) from None
    except RecursionError:
        raise DataError(f"{what} {str(path)!r} is nested too deeply to be valid.") from None


def _bad_byte(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return 0


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
               bool: "true or false", type(None): "null"}


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true/false is not a number here
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, types)


def check_fields(obj: Any, where: str, required: dict[str, Any], optional: dict[str, Any] | None = None,
                 *, strict: bool = False) -> dict[str, Any]:
    """Check that ``obj`` is a JSON object whose fields have the given types; returns it.

    ``where`` names the file (and the part of it) in the message; ``strict`` refuses unknown keys.
    Raises :class:`~cbm.exceptions.DataError`.
    """
    from cbm.exceptions import DataError

    if not isinstance(obj, dict):
        raise DataError(f"{where} should be a JSON object; got {_TYPE_NAMES.get(type(obj), type(obj).__name__)}.")
    optional = optional or {}
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{where} lacks the field(s) {missing}.")
    if strict:
        unknown = sorted(set(obj) - set(required) - set(optional))
        if unknown:
            raise DataError(f"{where} has unknown field(s) {unknown}; known: {sorted({*required, *optional})}.")
    for key, types in {**required, **optional}.items():
        if key in obj and not _is(obj[key], types):
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (types if isinstance(types, tuple) else (types,)))
            raise DataError(f"{where}: field {key!r} should be {want}; got {obj[key]!r:.60}.")
    return obj
