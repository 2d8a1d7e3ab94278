"""Import and export concept lists: plain text (one per line), CSV, JSON lists, LaBo's
class-to-concepts JSON, KnoBo's class-to-question-to-answer JSON and saved bank folders.

Published lists are noisy (blank lines, trailing spaces, repeated lines); reading strips
whitespace, skips blanks and keeps the first of exact repeats, and records what it dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cbm._io import atomic_write_bytes, atomic_write_json, csv_writer, read_json, unescape_csv_cell
from cbm.bank import ConceptBank, Provenance
from cbm.concepts.textbook import load_knobo_answers
from cbm.exceptions import DataError

FORMATS = ("txt", "csv", "json", "labo")


def read_lines(path: str | Path) -> list[str]:
    """Non-blank stripped lines of a text file, exact repeats removed, order kept."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Concept list {str(path)!r} not found.")
    return list(dict.fromkeys(s for line in path.read_text(errors="replace").splitlines()
                              if (s := line.strip())))


def _bank(texts: Sequence[str], path: Path, fmt: str, classes=None, prior=None) -> ConceptBank:
    prov = [Provenance("file", {"path": str(path), "format": fmt}) for _ in texts]
    return ConceptBank(list(texts), list(texts), provenance=prov, classes=classes, prior=prior,
                       metadata={"generator": "file", "imported_from": str(path)})


def load_concepts(path: str | Path) -> ConceptBank:
    """Read concepts from a ``.txt``, ``.csv`` or ``.json`` file or a saved bank folder.

    CSV needs a ``concept`` (or ``name``) column; optional ``text`` and ``class`` columns (a
    ``class`` column gives a +1 prior). JSON may be a list of strings, ``{class: [concepts]}``
    (LaBo), ``{class: {question: yes|no|unknown}}`` (KnoBo) or a bank's ``bank.json``. A file
    with no concept in it is a :class:`DataError`.
    """
    path = Path(path)
    if path.is_dir():
        return ConceptBank.load(path)
    suffix = path.suffix.lower()
    loaders = {".txt": lambda p: _bank(read_lines(p), p, "txt"), ".csv": _load_csv, ".json": _load_json}
    if suffix in loaders:
        bank = loaders[suffix](path)
        if len(bank) == 0:
            raise DataError(f"Concept file {str(path)!r} holds no concepts (it is empty or has only "
                            "blank entries); add one concept per line or entry.")
        return bank
    raise DataError(f"Cannot read concepts from {str(path)!r}: expected a .txt, .csv or .json "
                    "file, or a folder saved by ConceptBank.save.")


def _load_csv(path: Path) -> ConceptBank:
    rows = list(csv.DictReader(io.StringIO(path.read_text(errors="replace"))))
    cols = [c.strip().lower() for c in (rows[0].keys() if rows else []) if c]  # None: a row's extra cells
    key = next((c for c in ("concept", "name") if c in cols), None)
    if key is None:
        raise DataError(f"CSV concept file {str(path)!r} needs a 'concept' or 'name' column; "
                        f"found columns {cols}.")
    rows = [{k.strip().lower(): unescape_csv_cell(v or "").strip() for k, v in r.items() if k} for r in rows]
    names, texts, cls_of = [], [], {}
    for r in rows:
        n = r[key]
        if not n:
            continue
        if n not in cls_of:
            names.append(n)
            texts.append(r.get("text") or n)
            cls_of[n] = []
        if r.get("class"):
            cls_of[n].append(r["class"])
    classes = list(dict.fromkeys(c for cs in cls_of.values() for c in cs)) or None
    prior = None
    if classes:
        prior = np.zeros((len(classes), len(names)), np.float32)
        for j, n in enumerate(names):
            for c in cls_of[n]:
                prior[classes.index(c), j] = 1.0
    bank = _bank(names, path, "csv", classes, prior)
    bank.texts = texts
    return bank


def _load_json(path: Path) -> ConceptBank:
    data = read_json(path, "concept file")
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return _bank(list(dict.fromkeys(s for x in data if (s := x.strip()))), path, "json")
    if isinstance(data, list) and all(isinstance(x, dict) and "name" in x for x in data):
        bank = _bank([str(x["name"]) for x in data], path, "json")
        bank.texts = [str(x.get("text") or x["name"]) for x in data]
        return bank
    if isinstance(data, dict) and data.get("format", "").startswith("cbmkit-concept-bank"):
        return ConceptBank.from_parts(data, {})
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return load_knobo_answers(path)
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        classes = list(data)
        texts = list(dict.fromkeys(s for v in data.values() for x in v if (s := str(x).strip())))
        col = {t: j for j, t in enumerate(texts)}
        prior = np.zeros((len(classes), len(texts)), np.float32)
        for k, c in enumerate(classes):
            for x in data[c]:
                if str(x).strip():
                    prior[k, col[str(x).strip()]] = 1.0
        return _bank(texts, path, "labo", classes, prior)
    raise DataError(f"JSON concept file {str(path)!r} has an unknown layout: expected a list of "
                    "strings, {class: [concepts]}, {class: {question: answer}} or a bank.json.")


def save_concepts(bank: ConceptBank, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``bank`` as ``txt`` (one text per line), ``csv`` (name, text, source, classes),
    ``json`` (list of records with provenance) or ``labo`` ({class: [texts]}, needs a prior)."""
    path = Path(path)
    fmt = fmt or {".txt": "txt", ".csv": "csv", ".json": "json"}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ValueError(f"Export format must be one of {FORMATS}; got {fmt!r} for {str(path)!r}.")
    classes_of = _classes_of(bank)
    if fmt == "txt":
        atomic_write_bytes(path, ("\n".join(bank.texts) + "\n").encode())
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv_writer(buf)  # formula-like names are neutralised; _load_csv undoes it
        w.writerow(["concept", "text", "source", "class"])
        for j, (n, t) in enumerate(zip(bank.names, bank.texts, strict=True)):
            for c in classes_of[j] or [""]:
                w.writerow([n, t, bank.provenance[j].source, c])
        atomic_write_bytes(path, buf.getvalue().encode())
    elif fmt == "json":
        atomic_write_json(path, [{"name": n, "text": t, "classes": classes_of[j],
                                  "provenance": vars(bank.provenance[j])}
                                 for j, (n, t) in enumerate(zip(bank.names, bank.texts, strict=True))])
    else:
        if bank.prior is None:
            raise ValueError("The 'labo' format maps classes to concepts and needs a bank with a "
                             "class prior (classes + prior); this bank has none. Use txt/csv/json.")
        atomic_write_json(path, {c: [bank.texts[j] for j in range(len(bank)) if bank.prior[k, j] > 0]
                                 for k, c in enumerate(bank.classes)})
    return path


def _classes_of(bank: ConceptBank) -> list[list[str]]:
    if bank.prior is None:
        return [[] for _ in bank.names]
    return [[c for k, c in enumerate(bank.classes) if bank.prior[k, j] > 0] for j in range(len(bank))]

