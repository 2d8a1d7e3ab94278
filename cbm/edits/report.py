"""One logged edit's before/after as a self-contained HTML page (``cbm report MODEL --edit N``).

The numbers are the edit preview's own (:func:`cbm.edits.preview.preview` with the baselines of
:func:`cbm.edits.repair.compare_baselines`), measured on the model as it was just before the edit: the
version the edit was made on, with the edits logged before it in the same batch replayed through
:mod:`cbm.edits.history`'s log. The app's preview calls :func:`preview_with_baselines` too, so the page,
the app and ``cbm edit ... --dry-run`` agree.
"""

from __future__ import annotations

import html
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import atomic_write_json, read_json
from cbm.edits import Edit, TrainingData
from cbm.edits.history import HISTORY, read_history
from cbm.edits.preview import EditEffect, load_eval_data, load_evalsets, preview
from cbm.exceptions import CBMError, DataError
from cbm.io import load_model
from cbm.report import CSS, png_data_uri

#: A model directory's file naming the black box its edits are compared with: ``{"model_dir": PATH}``,
#: PATH relative to the model directory (written by :func:`record_black_box`; ``cbm demo`` does).
BLACK_BOX = "black-box.json"


def record_black_box(model_dir: str | Path, black_box_dir: str | Path) -> None:
    """Name ``black_box_dir`` (a saved model directory) as the black box ``model_dir``'s edits are compared with."""
    model_dir = Path(model_dir)
    rel = os.path.relpath(Path(black_box_dir).resolve(), model_dir.resolve())
    atomic_write_json(model_dir / BLACK_BOX, {"model_dir": Path(rel).as_posix()})


def black_box(model_dir: str | Path) -> Any:
    """The black box an edit is compared with: the model directory named in ``black-box.json``
    (:func:`record_black_box`), else a linear probe fitted on the model directory's training split
    (``data.npz``: ``train``, early-stopped on ``val``), else None."""
    recorded = Path(model_dir) / BLACK_BOX
    try:
        if recorded.is_file():
            return load_model(Path(model_dir) / str(read_json(recorded)["model_dir"]))
    except (CBMError, KeyError, TypeError, OSError) as e:
        warnings.warn(f"{str(recorded)!r} names a black box that cannot be loaded ({e}); comparing with a linear "
                      "probe fitted on the training split instead. Fix or delete that file.", stacklevel=2)
    data = Path(model_dir) / "data.npz"
    if not data.is_file():
        return None
    stat = data.stat()
    return _probe_on_training_split(str(data.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _probe_on_training_split(path: str, mtime_ns: int, size: int) -> Any:
    """A linear probe on ``path``'s ``train`` split, once per file version (``mtime_ns``, ``size``)."""
    from cbm.models import create_model

    try:
        data = TrainingData.from_npz(path)
    except CBMError:
        return None
    if np.asarray(data.y).ndim != 1:  # multi-label findings: no single-label black box to compare with
        return None
    return create_model("linear-probe", random_state=0).fit(data.X, data.y)


def preview_with_baselines(model: Any, edit: Edit, evalsets: Any, model_dir: str | Path | None = None,
                           bb: Any = None, cls: str | None = None) -> EditEffect:
    """:func:`cbm.edits.preview.preview` plus, when a black box is known (``bb``, else
    :func:`black_box` of ``model_dir``), :func:`cbm.edits.repair.compare_baselines` for the affected class
    (``cls`` when given: the class a repair is about) in ``effect.baselines``.

    A baseline that cannot be computed leaves ``baselines`` None and says why in ``effect.baseline_error``.
    """
    from cbm.edits.repair import compare_baselines

    effect = preview(model, edit, evalsets)
    if cls is not None:
        effect.affected = str(cls)
    effect.baseline_error = None
    bb = black_box(model_dir) if bb is None and model_dir is not None else bb
    if effect.affected is None:
        effect.baseline_error = "the edit changes no class's weights, so there is no class to compare on"
        return effect
    if bb is None:
        effect.baseline_error = ("no black box: none is saved next to the model and its data.npz has no "
                                 "'train' split to fit one on")
        return effect
    try:
        data = TrainingData.for_model(model)
    except CBMError:
        data = None
    try:
        effect.baselines = compare_baselines(model, edit, evalsets, bb, data, cls=effect.affected)
    except (CBMError, ValueError, KeyError) as e:
        effect.baseline_error = str(e)
    return effect


def logged_edit(model_dir: str | Path, seq: int) -> tuple[Any, Edit, dict[str, Any]]:
    """The model just before logged edit ``seq``, the edit and its log entry.

    "Before" is the version the edit was made on plus the edits logged before it in the same batch:
    those saved into the same version (for a saved edit), else those still pending.
    """
    path = Path(model_dir)
    if not (path / HISTORY).is_file():
        raise DataError(f"{str(path)!r} has no edit history ({HISTORY}); apply an edit first "
                        f"(`cbm edit {path} prune CLASS CONCEPT`).")
    entries = read_history(path / HISTORY)["entries"]
    by_seq = {int(e["seq"]): e for e in entries}
    if int(seq) not in by_seq:
        raise DataError(f"{str(path)!r} has no edit #{seq}; logged edits: {sorted(by_seq) or 'none'} "
                        f"(`cbm edit {path} history` lists them).")
    entry = by_seq[int(seq)]
    if entry["status"] == "saved":
        earlier = [e for e in entries if e["status"] == "saved" and e["version"] == entry["version"]]
    else:
        earlier = [e for e in entries if e["status"] == "pending" and e["base_version"] == entry["base_version"]]
    model = load_model(path, entry["base_version"])
    for e in sorted(earlier, key=lambda e: e["seq"]):
        if e["seq"] < entry["seq"]:
            Edit.from_dict(e["edit"]).apply(model)
    return model, Edit.from_dict(entry["edit"]), entry


def plain_description(edit: Edit) -> str:
    """The edit in words (:meth:`Edit.plain`)."""
    return edit.plain()


def _pct(v: float) -> str:
    return "-" if v != v else f"{v:.1%}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='n'>{c}</td>" if i else f"<td>{c}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def edit_html(effect: EditEffect, *, title: str, entry: dict[str, Any] | None = None,
              images: dict[str, np.ndarray] | None = None, max_images: int = 12) -> str:
    """An edit's effect as one self-contained HTML page: verdict, per-class recall before -> after
    (the affected class first), accuracy per split, the baselines, the weights that change and
    thumbnails of images whose prediction flips (``images``: split -> (N, H, W[, 3]) uint8)."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p><b>The edit:</b> {e(plain_description(effect.edit))}.</p>"]
    if entry is not None:
        where = (f"saved in version {entry['version']}" if entry["status"] == "saved"
                 else f"{entry['status']}, made on version {entry['base_version']}")
        parts.append(f"<p>Logged as edit #{entry['seq']} ({e(where)}) on {e(str(entry.get('when', '')))}"
                     + (f" by {e(str(entry['who']))}" if entry.get("who") else "")
                     + (f". Why: “{e(entry['why'])}”" if entry.get("why") else "") + ".</p>")
    parts.append(f"<h2>Verdict</h2><p>{e(effect.verdict())}</p>")
    rec = effect.recall()
    if len(rec):
        splits = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in rec.columns))
        rows = [[e(str(c))] + [f"{_pct(r[f'{s} before'])} &rarr; {_pct(r[f'{s} after'])}" for s in splits]
                for c, r in rec.iterrows()]
        first = f" ({e(effect.affected)} first, the class the edit is about)" if effect.affected else ""
        parts.append(f"<h2>Recall per class, before &rarr; after{first}</h2>"
                     "<p>Recall: the fraction of a class's images the model gets right.</p>"
                     + _table(["class"] + splits, rows))
    acc = effect.accuracy[effect.accuracy["group"] == "all"]
    rows = [[e(str(r.split)), _pct(r.before), _pct(r.after), f"{100 * r.delta:+.1f}", str(int(r.n)),
             str(len(effect.changed.get(r.split, ())))] for r in acc.itertuples()]
    parts.append("<h2>Accuracy per split</h2>" + _table(
        ["split", "before", "after", "change (points)", "images", "predictions that change"], rows))
    if effect.baselines is not None and len(effect.baselines):
        b = effect.baselines
        splits = list(dict.fromkeys(b["split"]))
        k = effect.affected or "the class"
        rows = []
        for m in dict.fromkeys(b["model"]):
            cells = [e(str(m))]
            for s in splits:
                r = b[(b["model"] == m) & (b["split"] == s)]
                cells.append(f"{_pct(r['accuracy'].iloc[0])} ({_pct(r['recall'].iloc[0])})" if len(r) else "-")
            rows.append(cells)
        parts.append(f"<h2>Baselines</h2><p>Accuracy per split (recall of {e(k)} in brackets): the edited model "
                     f"next to the black box, the black box given the same fix, and never predicting {e(k)}.</p>"
                     + _table(["model"] + splits, rows))
    elif getattr(effect, "baseline_error", None):
        parts.append(f"<p>Baselines unavailable: {e(effect.baseline_error)}</p>")
    if len(effect.changes):
        rows = [[e(str(r["class"])), e(str(r["concept"])), "-" if r["old"] is None else f"{r['old']:+.3f}",
                 "-" if r["new"] is None else f"{r['new']:+.3f}"] for r in effect.changes.head(30).to_dict("records")]
        more = f" (first 30 of {len(effect.changes)})" if len(effect.changes) > 30 else ""
        parts.append(f"<h2>Weights that change{more}</h2>" + _table(["class", "concept", "before", "after"], rows))
    for split, df in effect.changed.items():
        imgs = None if images is None else images.get(split)
        if imgs is None or not len(df):
            continue
        tiles = "".join(f"<figure style='display:inline-block;margin:4px'><img alt='{e(str(r['id']))}' "
                        f"src='{png_data_uri(imgs[int(r['index'])], 96)}'><figcaption><small>true {e(str(r['true']))}"
                        f"<br>{e(str(r['before']))} &rarr; {e(str(r['after']))}</small></figcaption></figure>"
                        for r in df.head(max_images).to_dict("records"))
        parts.append(f"<h2>Images in {e(split)} whose prediction changes ({len(df)}; first "
                     f"{min(len(df), max_images)} shown)</h2><div class='imgs'>{tiles}</div>")
    parts.append("</body></html>")
    return "".join(parts)


def edit_report(model_dir: str | Path, seq: int, data: str | Path | None = None) -> str:
    """``cbm report MODEL --edit N``: logged edit ``seq``'s before/after on ``data`` (default
    ``MODEL_DIR/data.npz``) as one self-contained HTML page."""
    path = Path(model_dir)
    file = Path(data) if data else path / "data.npz"
    if not file.is_file():
        raise DataError(f"No evaluation data at {str(file)!r} to measure the edit on; pass --data NPZ.")
    model, edit, entry = logged_edit(path, seq)
    sets = load_evalsets(model, file)
    effect = preview_with_baselines(model, edit, sets, path)
    raw = load_eval_data(file)
    images = {s: d["images"] for s, d in raw.items() if "images" in d}
    return edit_html(effect, title=f"Edit #{seq}: its effect, before and after", entry=entry, images=images)


__all__ = ["BLACK_BOX", "black_box", "edit_html", "edit_report", "logged_edit", "plain_description", "record_black_box",
           "preview_with_baselines"]
