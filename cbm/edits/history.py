"""Edit history of a model directory: every edit logged at once, undo/redo, versions and diffs.

:class:`EditSession` opens a model directory (see :mod:`cbm.io`), applies edits and records each
one immediately in ``MODEL_DIR/history.json`` (written atomically): what changed, for which class
and concept, the old and new values, why and when. Edits not yet saved as a version are
*pending*; opening the directory again (a new CLI call, a Streamlit rerun) replays them on the
version they were made against, so they are never lost. Replaying the same edits on the same saved
weights is deterministic, so the weights come back bit for bit and undo restores them exactly.
``save()`` writes a new version with :func:`cbm.io.save_model`; earlier versions stay loadable.

Log layout::

    {"format": "cbmkit-edit-history/1", "revision": 7, "base_version": 2, "log_id": "...",
     "entries": [{"seq", "edit", "changes", "why", "when", "status", "base_version", "version"}],
     "redo": [seq, ...],                    # undone edits, most recent last
     "events": [{"event", "seq", "version", "when"}]}

Audit trail: every entry and event records ``who`` (the session's ``user=``, else ``$CBM_USER``,
else the OS login name), ``when`` and, for edits and saves, why (``why`` / ``note``); an edit
applied after a preview also keeps its measured ``effect`` (accuracy before/after per split).
:meth:`EditSession.audit_trail` lists them in order (``cbm edit MODEL history --format csv``).

``status`` is "pending", "undone", "saved" (``version`` says where), "discarded" or "failed" (a
pending edit that no longer applies; ``error`` says why). The log is validated when read: a wrong
shape or an unknown field raises :class:`~cbm.exceptions.ModelDirError` naming the file.

Concurrency and crashes: every change holds the directory's lock (:func:`cbm.io.model_dir_lock`)
and works on the log and pointer as they are on disk at that moment, so edits from several
processes or app tabs all land in the log. A saved version records which logged edits it holds
(``config.json["edits"]``); if a save is killed after writing the version but before updating
the log, the next session marks those edits saved instead of saving them twice. A save is refused
when its pending edits were made on another version than the current one (another process saved
or trained in between): :meth:`EditSession.rebase` replays them on the current version.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbm._io import atomic_write_json, check_fields, read_json
from cbm.edits import Edit, EditRecord
from cbm.edits.preview import preview
from cbm.exceptions import CBMError, DataError, EditError, ModelDirError
from cbm.io import (
    POINTER,
    disk_versions,
    load_config,
    load_metrics,
    load_model,
    model_dir_lock,
    read_pointer,
    recover,
    save_model,
)

HISTORY = "history.json"
#: Environment variable naming who edits, when no ``user=`` / ``--user`` is given.
USER_ENV = "CBM_USER"
HISTORY_FORMAT = "cbmkit-edit-history/1"
STATUSES = ("pending", "undone", "saved", "discarded", "failed")
_OPT_INT = (int, type(None))
_LOG_FIELDS = {"format": str, "entries": list, "redo": list, "events": list}
_LOG_OPTIONAL = {"revision": int, "base_version": _OPT_INT, "log_id": str}
_ENTRY_FIELDS = {"seq": int, "edit": dict, "changes": list, "why": str, "when": str, "status": str,
                 "base_version": _OPT_INT, "version": _OPT_INT}
_ENTRY_OPTIONAL = {"error": str, "who": str, "effect": dict}


def current_user(user: str | None = None) -> str:
    """Who makes a change: ``user``, else ``$CBM_USER``, else the OS login name (else "unknown")."""
    for name in (user, os.environ.get(USER_ENV)):
        if name and str(name).strip():
            return str(name).strip()
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): getpass raises OSError or KeyError
        return "unknown"


def effect_summary(effect: Any) -> dict[str, Any]:
    """The measured effect of an edit (an :class:`~cbm.edits.preview.EditEffect`) as a small JSON dict:
    per split, n, accuracy before and after, and how many predictions change."""
    if hasattr(effect, "findings"):  # multi-label: AUROC and AP per finding and split
        return effect.summary()
    acc = effect.accuracy[effect.accuracy["group"] == "all"]
    return {str(r.split): {"n": int(r.n), "accuracy_before": round(float(r.before), 6),
                           "accuracy_after": round(float(r.after), 6),
                           "predictions_changed": int(len(effect.changed.get(r.split, ())))}
            for r in acc.itertuples()}


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _empty_log() -> dict[str, Any]:
    return {"format": HISTORY_FORMAT, "revision": 0, "base_version": None, "log_id": uuid.uuid4().hex,
            "entries": [], "redo": [], "events": []}


def read_history(path: str | Path) -> dict[str, Any]:
    """The edit log ``path`` (a ``history.json``), validated; raises :class:`ModelDirError` naming it."""
    path = Path(path)
    where = f"edit history {str(path)!r}"
    try:
        log = check_fields(read_json(path, "edit history"), where, {"format": str})
        if log["format"] != HISTORY_FORMAT:
            raise DataError(f"{where} has format {log['format']!r}; expected {HISTORY_FORMAT!r}.")
        check_fields(log, where, _LOG_FIELDS, _LOG_OPTIONAL, strict=True)
        seqs = set()
        for i, e in enumerate(log["entries"], 1):
            at = f"{where}, entry {i}"
            check_fields(e, at, _ENTRY_FIELDS, _ENTRY_OPTIONAL, strict=True)
            if e["status"] not in STATUSES or e["seq"] in seqs:
                raise DataError(f"{at} has status {e['status']!r} (expected one of {STATUSES}) or a repeated "
                                f"seq {e['seq']}.")
            seqs.add(e["seq"])
            for c in e["changes"]:
                check_fields(c, f"{at}, a change", {})
            try:
                Edit.from_dict(e["edit"])
            except (TypeError, ValueError, CBMError) as err:
                raise DataError(f"{at} holds an edit that cannot be read ({err}).") from None
        if not all(type(s) is int and s in seqs for s in log["redo"]):
            raise DataError(f"{where}: 'redo' should list seq numbers of entries; got {log['redo']!r:.80}.")
        for ev in log["events"]:
            check_fields(ev, f"{where}, an event", {"event": str})
    except CBMError as e:
        raise ModelDirError(f"{e} It is the edit log of {str(path.parent)!r}; move it away to start a new "
                            "log (saved versions are unaffected).") from None
    return log


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


def revert(path: str | Path, version: int, note: str = "") -> int:
    """Make an earlier ``version`` current again, as a new version (a copy); returns its number.

    Refused while unsaved edits are pending; recorded in the edit history
    (:meth:`EditSession.revert_to`).
    """
    return EditSession(path).revert_to(version, note=note)


class EditSession:
    """Edit a model directory with a persistent log, undo/redo and versioned saves.

    Safe to use from several processes (CLI calls, app tabs) at once: each change holds the
    directory's lock and starts from the state on disk, so no applied edit is lost.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by :func:`cbm.io.save_model`.
    version : int, optional
        Start editing from this version (default: the current one). Refused while edits made
        against another version are pending; saving needs it to be current (see :meth:`revert_to`).
    user : str, optional
        Who edits, recorded with every change (default ``$CBM_USER``, else the OS login name).

    Examples
    --------
    >>> s = EditSession("runs/birds")                              # doctest: +SKIP
    >>> s.apply(Prune("cardinal", "water background"), why="spurious")  # doctest: +SKIP
    >>> s.undo(); s.redo(); v = s.save("prune water")              # doctest: +SKIP
    """

    def __init__(self, model_dir: str | Path, version: int | None = None, *,
                 user: str | None = None) -> None:
        self.path = Path(model_dir)
        self.user = current_user(user)
        self._requested = version
        self.warnings: list[str] = []
        self._load()
        if self._needs_recovery():
            with self._locked():
                pass

    # -- state on disk ------------------------------------------------------------------------
    @property
    def _file(self) -> Path:
        return self.path / HISTORY

    def _stamp_now(self) -> tuple[Any, ...]:
        out = []
        for f in (self._file, self.path / POINTER):
            try:
                st = f.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _read(self) -> dict[str, Any]:
        return read_history(self._file) if self._file.exists() else _empty_log()

    def _write(self) -> None:
        self._log["revision"] = int(self._log.get("revision", 0)) + 1
        atomic_write_json(self._file, self._log)
        self._stamp = self._stamp_now()

    def _load(self, log: dict[str, Any] | None = None, info: dict[str, Any] | None = None) -> None:
        self._stamp = self._stamp_now()
        info = read_pointer(self.path) if info is None else info
        self._log = self._read() if log is None else log
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

    def _follows_current(self, info: dict[str, Any]) -> bool:
        """Whether the session should move to the current version (nothing pending, none asked for)."""
        return (not self._entries("pending") and self._requested is None
                and self.version != info["current"])

    def _refresh(self) -> None:
        """Reload when another process (the CLI, another app tab) changed the log or saved a version."""
        if self._stamp_now() == self._stamp:
            return
        log, info = self._read(), read_pointer(self.path)
        if log.get("revision") != self._log.get("revision") or log.get("log_id") != self._log.get("log_id"):
            self.warnings = []
            self._load(log, info)
        elif self._follows_current(info):
            self._load(log, info)
        self._stamp = self._stamp_now()

    def _needs_recovery(self) -> bool:
        """Cheap check (no lock) for what :meth:`_sync` repairs: leftovers of a killed save."""
        listed = set(read_pointer(self.path)["versions"])
        if any(p.name.startswith(".v") for p in self.path.iterdir()) or set(disk_versions(self.path)) - listed:
            return True
        return bool(self._entries("pending")) and self.version != read_pointer(self.path)["current"]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the directory lock and bring the session up to date with the disk first."""
        with model_dir_lock(self.path):
            self._sync()
            yield

    def _sync(self) -> None:
        self.warnings += recover(self.path)
        log, info = self._read(), read_pointer(self.path)
        if (log.get("revision") != self._log.get("revision") or log.get("log_id") != self._log.get("log_id")
                or self._follows_current({**info})):
            self._load(log, info)
        if not self._file.exists() or "log_id" not in self._log:
            self._log.setdefault("log_id", uuid.uuid4().hex)
            self._write()
        self._reconcile(info)

    def _reconcile(self, info: dict[str, Any]) -> None:
        """Mark pending edits saved when the current version holds them (a save killed after
        writing its version, before updating the log)."""
        pending = self._entries("pending")
        if not pending or self.version == info["current"]:
            return
        mark = load_config(self.path, info["current"]).get("edits")
        seqs = {e["seq"] for e in pending}
        if not (isinstance(mark, dict) and mark.get("log") == self._log["log_id"]
                and seqs <= set(mark.get("seqs", []))):
            return
        self._mark_saved(pending, info["current"])
        self._event("save", version=info["current"])
        self._write()
        self._load(self._log, info)
        self.warnings.append(f"Edit(s) {sorted(seqs)} were saved as version {info['current']} by a save that was "
                             "interrupted before it updated the log; the log now says so.")

    def _mark_saved(self, pending: list[dict[str, Any]], version: int) -> None:
        for e in pending:
            e.update(status="saved", version=version)
        for s in self._log["redo"]:
            self._entry(s)["status"] = "discarded"
        self._log.update(redo=[], base_version=version)

    def _entries(self, status: str) -> list[dict[str, Any]]:
        return [e for e in self._log["entries"] if e["status"] == status]

    def _entry(self, seq: int) -> dict[str, Any]:
        return next(e for e in self._log["entries"] if e["seq"] == seq)

    def _event(self, event: str, seq: int | None = None, version: int | None = None, **more: Any) -> None:
        self._log["events"].append({"event": event, "seq": seq, "version": version, "when": _now(),
                                    "who": self.user, **more})

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
        """:func:`cbm.edits.preview.preview` on the session's current model (nothing committed)."""
        self._refresh()
        return preview(self._model, edit, evalsets)

    def apply(self, edit: Edit, why: str = "", effect: Any = None) -> dict[str, Any]:
        """Apply ``edit`` and record it in the log at once; returns the log entry.

        ``effect``: the :meth:`preview` of this edit (or :func:`effect_summary` of it), kept in
        the log as its measured effect.
        """
        if effect is not None and not isinstance(effect, dict):
            effect = effect_summary(effect)
        with self._locked():
            record = edit.apply(self._model)
            seq = 1 + max((e["seq"] for e in self._log["entries"]), default=0)
            entry = {"seq": seq, "edit": edit.to_dict(), "changes": record.changes, "why": why, "when": _now(),
                     "status": "pending", "base_version": self.version, "version": None, "who": self.user}
            if effect is not None:
                entry["effect"] = effect
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
        with self._locked():
            pending = self._entries("pending")
            if not pending:
                raise EditError("Nothing to undo: there are no unsaved edits. To go back to an earlier saved "
                                f"version use revert_to(version) (`cbm edit MODEL revert N`); versions: "
                                f"{read_pointer(self.path)['versions']}.")
            entry, record = pending[-1], self._records.pop()
            record.undo(self._model)
            entry["status"] = "undone"
            self._log["redo"].append(entry["seq"])
            self._event("undo", entry["seq"])
            self._write()
        return entry

    def redo(self) -> dict[str, Any]:
        """Re-apply the most recently undone edit; returns its log entry."""
        with self._locked():
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
        with self._locked():
            dropped = self._entries("pending") + [self._entry(s) for s in self._log["redo"]]
            for e in dropped:
                e["status"] = "discarded"
            self._log["redo"] = []
            self._event("discard")
            self._write()
            self._load(self._log)
        return len(dropped)

    def save(self, note: str = "", metrics: dict[str, Any] | None = None) -> int:
        """Save the edited model as a new version (earlier versions stay); returns its number.

        Refused when the pending edits were made on another version than the current one (another
        process saved or trained in between): :meth:`rebase` them first, or :meth:`discard` them.
        """
        with self._locked():
            pending = self._entries("pending")
            if not pending:
                raise EditError(f"No unsaved edits in {str(self.path)!r}; nothing to save (logged edits are in "
                                f"saved versions; the current one is {self.version}).")
            current = read_pointer(self.path)["current"]
            if self.version != current:
                raise EditError(
                    f"The {len(pending)} unsaved edit(s) in {str(self.path)!r} were made on version {self.version}, "
                    f"but version {current} is now current (saved meanwhile; its note: "
                    f"{load_config(self.path, current).get('note') or 'none'!r}). Saving them would drop "
                    f"version {current}'s changes. Run `cbm edit {self.path} rebase` (EditSession.rebase()) to "
                    f"replay them on version {current}, check, then save; or `cbm edit {self.path} discard`."
                )
            if not note:
                note = "; ".join(Edit.from_dict(e["edit"]).describe() for e in pending)[:500]
            mark = {"log": self._log["log_id"], "seqs": [e["seq"] for e in pending]}
            version = save_model(self._model, self.path, note=note, metrics=metrics,
                                 extra={"edits": mark, "saved_by": self.user})
            self._mark_saved(pending, version)
            self._event("save", version=version, note=note)
            self._write()
            self.version, self._records = version, []
            self._model.version_ = version
        return version

    def rebase(self) -> list[dict[str, Any]]:
        """Replay the unsaved edits on the current version (after another process saved one).

        Returns the edits that no longer apply there (marked "failed", with the reason in
        ``warnings``); the others stay pending, ready to check and :meth:`save`.
        """
        with self._locked():
            pending = self._entries("pending")
            current = read_pointer(self.path)["current"]
            if not pending:
                raise EditError(f"No unsaved edits in {str(self.path)!r}; nothing to rebase.")
            if self.version == current:
                raise EditError(f"The unsaved edits were made on version {current}, the current one; save them.")
            for e in pending:
                e["base_version"] = current
            self._log["base_version"] = current
            self._event("rebase", version=current)
            self._requested = None
            self._load(self._log)
            for e, record in zip(self._entries("pending"), self._records, strict=True):
                e["changes"] = record.changes  # old values as they are in the new base version
            self._write()
        return [e for e in pending if e["status"] == "failed"]

    def revert_to(self, version: int, note: str = "") -> int:
        """Make an earlier ``version`` current again by saving a copy of it as the newest version
        (with its metrics and fingerprints); recorded in the log. Returns the new version number."""
        versions = read_pointer(self.path)["versions"]
        if int(version) not in versions:  # refused before the lock, which would start the log
            raise EditError(f"{str(self.path)!r} has no version {version}; versions: {versions}.")
        with self._locked():
            n = len(self._entries("pending"))
            if n:
                raise EditError(f"{n} unsaved edit(s) are pending in {str(self.path)!r}; save or discard them "
                                "(`cbm edit MODEL save` / `discard`) before reverting to another version.")
            info = read_pointer(self.path)
            version = int(version)
            if version not in info["versions"]:
                raise EditError(f"{str(self.path)!r} has no version {version}; versions: {info['versions']}.")
            if version == info["current"]:
                raise EditError(f"Version {version} is already the current version of {str(self.path)!r}.")
            old = load_model(self.path, version)
            metrics = load_metrics(self.path, version) or None
            new = save_model(old, self.path, note=note or f"revert to version {version}", metrics=metrics,
                             fingerprints=load_config(self.path, version).get("fingerprints", {}),
                             extra={"reverted_from": version, "saved_by": self.user})
            self._log["base_version"] = new
            self._event("revert", version=new, reverted_from=version, note=note)
            self._write()
            self._requested = None
            self._load(self._log)
        return new

    # -- reading ------------------------------------------------------------------------------
    def diff(self, v1: int, v2: int | None = None) -> VersionDiff:
        """Weight changes and concept additions/removals from version ``v1`` to ``v2``.

        ``v2=None`` compares with the session's current model, unsaved edits included.
        """
        self._refresh()
        return diff_models(load_model(self.path, v1), self._model if v2 is None else load_model(self.path, v2))

    def history(self) -> pd.DataFrame:
        """One row per logged edit: seq, status, edit (its exact record), description (in words), class,
        concept, old, new, n_changes, why, when, version."""
        self._refresh()
        rows = []
        for e in self._log["entries"]:
            ch = e["changes"]
            one = ch[0] if len(ch) == 1 else {}
            edit = Edit.from_dict(e["edit"])
            rows.append((e["seq"], e["status"], edit.describe(), edit.plain(),
                         ", ".join(sorted({str(c.get("class")) for c in ch})),
                         ", ".join(sorted({str(c.get("concept")) for c in ch})),
                         one.get("old"), one.get("new"), len(ch), e["why"], e["when"], e["version"]))
        return pd.DataFrame(rows, columns=["seq", "status", "edit", "description", "class", "concept", "old", "new",
                                           "n_changes", "why", "when", "version"])

    def audit_trail(self) -> pd.DataFrame:
        """Every logged action in order: when, who, action, seq, version, edit, why, effect.

        ``action`` is edit, undo, redo, discard, save, rebase or revert; ``why`` is the edit's
        reason (for saves and reverts, their note); ``effect`` the measured effect of an edit
        applied after a preview (a JSON string, empty when none was run). Logs written before
        ``who`` was recorded show an empty ``who``.
        """
        self._refresh()
        entries = {e["seq"]: e for e in self._log["entries"]}
        rows = []
        for ev in self._log["events"]:
            e = entries.get(ev.get("seq")) if ev.get("seq") is not None else None
            edit = Edit.from_dict(e["edit"]).describe() if e else ""
            why = e["why"] if e and ev["event"] == "edit" else str(ev.get("note", "") or "")
            effect = json.dumps(e["effect"], sort_keys=True) if e and "effect" in e and \
                ev["event"] == "edit" else ""
            rows.append((str(ev.get("when", "")), str(ev.get("who", "")), ev["event"], ev.get("seq"),
                         ev.get("version"), edit, why, effect))
        return pd.DataFrame(rows, columns=["when", "who", "action", "seq", "version", "edit", "why",
                                           "effect"])


__all__ = ["HISTORY", "USER_ENV", "EditSession", "VersionDiff", "current_user", "diff_models",
           "effect_summary", "read_history"]
