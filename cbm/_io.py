"""Atomic file writes (a crash mid-write never leaves a half file that is read as valid), JSON
reading with one error type, and CSV cells that a spreadsheet never runs as formulas."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
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


def write_figure_html(fig: Any, path: str | os.PathLike) -> None:
    """Write a plotly figure as one self-contained HTML file (plotly.js inline, so it draws offline)."""
    with atomic_path(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)


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


# -- CSV cells a spreadsheet never runs (OWASP "CSV injection") ---------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _is_formula_like(text: str) -> bool:
    """True when a spreadsheet could run ``text`` (or ``text`` without its leading quotes) as a formula."""
    return text.lstrip("'").startswith(_FORMULA_START) and not _NUMBER.fullmatch(text)


def safe_csv_cell(value: Any) -> Any:
    """``value`` with a ``'`` put before text that starts like a formula (``=``, ``+``, ``-``, ``@``,
    tab, carriage return); numbers such as ``-0.5`` and other values are returned as they are.

    :func:`unescape_csv_cell` undoes it exactly (text that already starts with quotes before such a
    character gets one more), so the project's readers get back what was written.
    """
    if isinstance(value, str) and _is_formula_like(value):
        return "'" + value
    return value


def unescape_csv_cell(text: str) -> str:
    """Undo :func:`safe_csv_cell` on a cell read back from a CSV the project wrote."""
    if text.startswith("'") and _is_formula_like(text[1:]):
        return text[1:]
    return text


class SafeCSVWriter:
    """A :func:`csv.writer` whose rows go through :func:`safe_csv_cell`."""

    def __init__(self, fh: Any, **fmtparams: Any) -> None:
        import csv

        self._writer = csv.writer(fh, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        """Write one row, neutralising formula-like cells."""
        return self._writer.writerow([safe_csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Write rows, neutralising formula-like cells."""
        for row in rows:
            self.writerow(row)


def csv_writer(fh: Any, **fmtparams: Any) -> SafeCSVWriter:
    """:func:`csv.writer` for every CSV the project writes: formula-like text cells are neutralised."""
    return SafeCSVWriter(fh, **fmtparams)


def safe_csv_frame(df: Any) -> Any:
    """A copy of the pandas DataFrame ``df`` whose text cells (and column names) went through
    :func:`safe_csv_cell`, for ``to_csv``; numeric columns are unchanged."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(safe_csv_cell)
    out.columns = [safe_csv_cell(c) for c in out.columns]
    return out
