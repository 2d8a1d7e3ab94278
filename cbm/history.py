"""Edit history of a model directory: every edit logged at once, undo/redo, versions and diffs.

:class:`EditSession` opens a model directory (see :mod:`cbm.io`), applies edits and records each
one immediately in ``MODEL_DIR/history.json`` (written atomically): what changed, for which class
and concept, the old and new values, why and when. Edits not yet saved as a version are
*pending*; opening the directory again (a new CLI call, a Streamlit rerun) replays them on the
version they were made against, so they are never lost. Replaying the same edits on the same saved
weights is deterministic, so the weights come back bit for bit and undo restores them exactly.
``save()`` writes a new version with :func:`cbm.io.save_model`; earlier versions stay loadable.

Log layout::

    {"format": "cbmkit-edit-history/1", "revision": 7, "base_version": 2,
     "entries": [{"seq", "edit", "changes", "why", "when", "status", "base_version", "version"}],
     "redo": [seq, ...],                    # undone edits, most recent last
     "events": [{"event", "seq", "version", "when"}]}

``status`` is "pending", "undone", "saved" (``version`` says where) or "discarded".
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbm._io import atomic_write_json, read_json
from cbm.edit_eval import preview
from cbm.edits import Edit, EditRecord
from cbm.exceptions import CBMError, EditError, ModelDirError
from cbm.io import load_model, read_pointer, save_model

HISTORY = "history.json"
HISTORY_FORMAT = "cbmkit-edit-history/1"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass
class VersionDiff:
    """Differences between two models: weight changes, concepts added and removed, intercepts."""

    weights: pd.DataFrame  # class, concept, old, new, delta
    added: list[str]
    removed: list[str]
    intercepts: pd.DataFrame  # class, old, new

    @property
    def empty(self) -> bool:
        return self.weights.empty and not self.added and not self.removed and self.intercepts.empty

    def report(self, limit: int = 20) -> str:
        if self.empty:
            return "no differences"
        lines = [f"{len(self.weights)} weight change(s)"]
        for cls, concept, old, new, _ in self.weights.head(limit).itertuples(index=False, name=None):
            lines.append(f"  {cls} / {concept}: {old:+.4f} -> {new:+.4f}")
        if len(self.weights) > limit:
            lines.append(f"  ... {len(self.weights) - limit} more")
        lines += [f"added concept: {n}" for n in self.added] + [f"removed concept: {n}" for n in self.removed]
        lines += [f"intercept {c}: {o:+.4f} -> {n:+.4f}" for c, o, n in self.intercepts.itertuples(index=False, name=None)]
        return "\n".join(lines)


def diff_models(a: Any, b: Any) -> VersionDiff:
    """Weight changes from model ``a`` to model ``b``, matched by class and concept name."""
    ca, cb = a.concept_names_, b.concept_names_
    common = [n for n in ca if n in set(cb)]
    classes = [c for c in a.class_names_ if c in set(b.class_names_)]
    ia = [a.class_names_.index(c) for c in classes]
    ib = [b.class_names_.index(c) for c in classes]
    Wa = np.asarray(a.coef_)[np.ix_(ia, [ca.index(n) for n in common])]
    Wb = np.asarray(b.coef_)[np.ix_(ib, [cb.index(n) for n in common])]
    rows = [(classes[k], common[j], float(Wa[k, j]), float(Wb[k, j]), float(Wb[k, j] - Wa[k, j]))
            for k, j in zip(*np.nonzero(Wa != Wb), strict=True)]
    ba, bb = np.asarray(a.intercept_)[ia], np.asarray(b.intercept_)[ib]
    inter = [(classes[k], float(ba[k]), float(bb[k])) for k in np.flatnonzero(ba != bb)]
    return VersionDiff(
        pd.DataFrame(rows, columns=["class", "concept", "old", "new", "delta"]),
        [n for n in cb if n not in set(ca)], [n for n in ca if n not in set(cb)],
        pd.DataFrame(inter, columns=["class", "old", "new"]),
    )


class EditSession:
    """Edit a model directory with a persistent log, undo/redo and versioned saves.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by :func:`cbm.io.save_model`.
    version : int, optional
        Start editing from this version (default: the current one). Refused while edits made
        against another version are pending.

    Examples
    --------
    >>> s = EditSession("runs/birds")                              # doctest: +SKIP
    >>> s.apply(Prune("cardinal", "water background"), why="spurious")  # doctest: +SKIP
    >>> s.undo(); s.redo(); v = s.save("prune water")              # doctest: +SKIP
    """

    def __init__(self, model_dir: str | Path, version: int | None = None) -> None:
        self.path = Path(model_dir)
        self._requested = version
        self.warnings: list[str] = []
        self._load()

    # -- state on disk ------------------------------------------------------------------------
    @property
    def _file(self) -> Path:
        return self.path / HISTORY

    def _stamp_now(self) -> tuple[int, int] | None:
        try:
            st = self._file.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> dict[str, Any]:
        if not self._file.exists():
            return {"format": HISTORY_FORMAT, "revision": 0, "base_version": None, "entries": [],
                    "redo": [], "events": []}
        try:
            log = read_json(self._file, "edit history")
        except CBMError as e:
            raise ModelDirError(f"{e} It is the edit log of {str(self.path)!r}; move it away to start a new "
                                "log (saved versions are unaffected).") from None
        if log.get("format") != HISTORY_FORMAT:
            raise ModelDirError(f"{str(self._file)!r} has format {log.get('format')!r}; expected {HISTORY_FORMAT!r}.")
        return log

    def _write(self) -> None:
        self._log["revision"] = int(self._log.get("revision", 0)) + 1
        atomic_write_json(self._file, self._log)
        self._stamp = self._stamp_now()

    def _load(self) -> None:
        info = read_pointer(self.path)
        self._log = self._read()
        pending = self._entries("pending")
        base = self._log.get("base_version")
        if pending:
            if self._requested is not None and int(self._requested) != base:
                raise EditError(f"{len(pending)} unsaved edit(s) were made against version {base}; save or "
                                f"discard them before editing version {self._requested}.")
            if base not in info["versions"]:
                raise ModelDirError(f"Unsaved edits refer to version {base}, which is missing from "
                                    f"{str(self.path)!r}; discard them (`cbm edit MODEL discard`).")
        else:
            base = info["current"] if self._requested is None else int(self._requested)
        self._model = load_model(self.path, base)
        self.version = base
        self._log["base_version"] = base
        self._records: list[EditRecord] = []
        for e in pending:
            try:
                self._records.append(Edit.from_dict(e["edit"]).apply(self._model))
            except CBMError as err:  # keep the session usable; say what was dropped
                e["status"] = "failed"
                e["error"] = str(err)
                self.warnings.append(f"Pending edit #{e['seq']} could not be replayed and was dropped: {err}")
        self._stamp = self._stamp_now()

    def _refresh(self) -> None:
        """Reload when another process (the CLI, another app tab) changed the log."""
        if self._stamp_now() != self._stamp:
            if self._read().get("revision") != self._log.get("revision"):
                self.warnings = []
                self._load()
            self._stamp = self._stamp_now()

    def _entries(self, status: str) -> list[dict[str, Any]]:
        return [e for e in self._log["entries"] if e["status"] == status]

    def _entry(self, seq: int) -> dict[str, Any]:
        return next(e for e in self._log["entries"] if e["seq"] == seq)

    def _event(self, event: str, seq: int | None = None, version: int | None = None) -> None:
        self._log["events"].append({"event": event, "seq": seq, "version": version, "when": _now()})

    # -- editing ------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model with every pending edit applied (reloaded if another process changed the log)."""
        self._refresh()
        return self._model

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Edits applied but not saved as a version, oldest first."""
        self._refresh()
        return self._entries("pending")

    @property
    def can_undo(self) -> bool:
        return bool(self.pending)

    @property
    def can_redo(self) -> bool:
        self._refresh()
        return bool(self._log["redo"])

    def preview(self, edit: Edit, evalsets: Any):
        """:func:`cbm.edit_eval.preview` on the session's current model (nothing committed)."""
        self._refresh()
        return preview(self._model, edit, evalsets)

    def apply(self, edit: Edit, why: str = "") -> dict[str, Any]:
        """Apply ``edit`` and record it in the log at once; returns the log entry."""
        self._refresh()
        record = edit.apply(self._model)
        seq = 1 + max((e["seq"] for e in self._log["entries"]), default=0)
        entry = {"seq": seq, "edit": edit.to_dict(), "changes": record.changes, "why": why, "when": _now(),
                 "status": "pending", "base_version": self.version, "version": None}
        try:
            for s in self._log["redo"]:
                self._entry(s)["status"] = "discarded"
            self._log["redo"] = []
            self._log["entries"].append(entry)
            self._event("edit", seq)
            self._write()
        except BaseException:
            record.undo(self._model)
            self._log = self._read()
            raise
        self._records.append(record)
        return entry

    def undo(self) -> dict[str, Any]:
        """Undo the last unsaved edit (exact previous weights); returns its log entry."""
        self._refresh()
        pending = self._entries("pending")
        if not pending:
            raise EditError("Nothing to undo: there are no unsaved edits. To go back to an earlier saved "
                            f"version use revert_to(version); versions: {read_pointer(self.path)['versions']}.")
        entry, record = pending[-1], self._records.pop()
        record.undo(self._model)
        entry["status"] = "undone"
        self._log["redo"].append(entry["seq"])
        self._event("undo", entry["seq"])
        self._write()
        return entry

    def redo(self) -> dict[str, Any]:
        """Re-apply the most recently undone edit; returns its log entry."""
        self._refresh()
        if not self._log["redo"]:
            raise EditError("Nothing to redo: no edit was undone since the last new edit or save.")
        entry = self._entry(self._log["redo"][-1])
        record = Edit.from_dict(entry["edit"]).apply(self._model)
        self._records.append(record)
        self._log["redo"].pop()
        entry["status"] = "pending"
        self._event("redo", entry["seq"])
        self._write()
        return entry

    def discard(self) -> int:
        """Drop all unsaved edits (back to the saved version); returns how many were dropped."""
        self._refresh()
        dropped = self._entries("pending") + [self._entry(s) for s in self._log["redo"]]
        for e in dropped:
            e["status"] = "discarded"
        self._log["redo"] = []
        self._event("discard")
        self._write()
        self._load()
        return len(dropped)

    def save(self, note: str = "", metrics: dict[str, Any] | None = None) -> int:
        """Save the edited model as a new version (earlier versions stay); returns its number."""
        self._refresh()
        pending = self._entries("pending")
        if not pending:
            raise EditError(f"No unsaved edits in {str(self.path)!r}; nothing to save.")
        if not note:
            note = "; ".join(Edit.from_dict(e["edit"]).describe() for e in pending)[:500]
        version = save_model(self._model, self.path, note=note, metrics=metrics)
        for e in pending:
            e.update(status="saved", version=version)
        for s in self._log["redo"]:
            self._entry(s)["status"] = "discarded"
        self._log.update(redo=[], base_version=version)
        self._event("save", version=version)
        self._write()
        self.version, self._records = version, []
        self._model.version_ = version
        return version

    def revert_to(self, version: int, note: str = "") -> int:
        """Save a copy of an earlier ``version`` as the newest version; returns its number."""
        self._refresh()
        if self._entries("pending"):
            raise EditError("Save or discard the unsaved edits before reverting to another version.")
        new = save_model(load_model(self.path, version), self.path, note=note or f"revert to version {version}")
        self._log["base_version"] = new
        self._event("revert", version=new)
        self._write()
        self._load()
        return new

    # -- reading ------------------------------------------------------------------------------
    def diff(self, v1: int, v2: int | None = None) -> VersionDiff:
        """Weight changes and concept additions/removals from version ``v1`` to ``v2``.

        ``v2=None`` compares with the session's current model, unsaved edits included.
        """
        self._refresh()
        return diff_models(load_model(self.path, v1), self._model if v2 is None else load_model(self.path, v2))

    def history(self) -> pd.DataFrame:
        """One row per logged edit: seq, status, edit, class, concept, old, new, n_changes, why, when, version."""
        self._refresh()
        rows = []
        for e in self._log["entries"]:
            ch = e["changes"]
            one = ch[0] if len(ch) == 1 else {}
            rows.append((e["seq"], e["status"], Edit.from_dict(e["edit"]).describe(),
                         ", ".join(sorted({str(c["class"]) for c in ch})), ", ".join(sorted({c["concept"] for c in ch})),
                         one.get("old"), one.get("new"), len(ch), e["why"], e["when"], e["version"]))
        return pd.DataFrame(rows, columns=["seq", "status", "edit", "class", "concept", "old", "new", "n_changes",
                                           "why", "when", "version"])


__all__ = ["HISTORY", "EditSession", "VersionDiff", "diff_models"]
