"""Batch predictions with explanations: a model over a folder, manifest or embedding cache -> CSV.

:func:`predict_to_csv` writes one row per image::

    id, predicted, confidence, p:<class 1>, ..., p:<class K>, concepts_for, concepts_against,
    [ood_score, ood_flag,] model_version

``confidence`` is the predicted class's probability (its ``p:`` column, 0 to 1).

``concepts_for`` / ``concepts_against`` list the ``top`` concepts with the largest positive /
most negative contributions to the predicted class as ``name (+0.123); other (+0.045)``.
``model_version`` is the saved version, with ``+N`` when N unsaved edits were applied on it.

A multi-label model gets ``findings`` (the findings with probability >= 0.5, ``; ``-separated)
instead of ``predicted`` and ``confidence``, one ``p:<finding>`` sigmoid per finding, and ``explained`` naming the
most likely finding, whose concepts ``concepts_for`` / ``concepts_against`` list.

``ood_score`` is the out-of-distribution score (:mod:`cbm.ood`: the Mahalanobis distance of the
image's unit-length embedding to the model's in-distribution evaluation embeddings,
``MODEL_DIR/data.npz``; 0 at their centre, larger is more unusual, no upper limit, so compare it
with the threshold rather than across models) and ``ood_flag`` is 1 when it is above the threshold
calibrated to flag 5% of the validation images (the summary line prints it); both columns are
there whenever the model directory has that data.

The source is streamed in batches (memory: one batch of embeddings and explanations), and each
batch is appended to the CSV with one write followed by fsync. A run that is stopped or crashes
can simply be run again: ids already in the CSV are skipped. An existing file is changed only
once it is verified as this model version's own output (its exact columns and every row's
``model_version``); only then is a partial last line left by a crash cut off. Any other file is
refused and left as it was, so rows of two models never mix and no one else's data is touched.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import csv_writer, unescape_csv_cell
from cbm.encoders.rebuild import encoder_for
from cbm.encoders.record import EncoderRecord, model_encoder_record
from cbm.exceptions import DataError, EncoderMismatchError
from cbm.explain import explain, softmax
from cbm.models.multilabel import PRESENT_THRESHOLD
from cbm.models.source_repair import embed_for_model, require_images

__all__ = ["PredictStats", "ood_detector", "predict_to_csv", "prediction_columns"]

#: Manifest suffixes accepted as SOURCE (anything else that is a file is refused).
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


@dataclass
class PredictStats:
    """What one :func:`predict_to_csv` run did."""

    out: Path
    total: int = 0  # rows in the source
    written: int = 0  # rows appended by this run
    resumed: int = 0  # rows already in the CSV, skipped
    skipped: list[str] = field(default_factory=list)  # unreadable images (messages naming them)
    model_version: str = ""
    ood_threshold: float | None = None  # the calibrated out-of-distribution threshold, if scored

    def summary(self) -> str:
        """One line for the command line."""
        parts = [f"wrote {self.written} prediction(s) to {self.out}"]
        if self.resumed:
            parts.append(f"{self.resumed} already there were kept")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} unreadable image(s)")
        if self.ood_threshold is not None:
            parts.append(f"ood_flag marks ood_score above {self.ood_threshold:.2f} (the score is 0 at the training "
                         "images' centre, larger is more unusual; the threshold flags 5% of validation images)")
        return ", ".join(parts) + f" (model version {self.model_version})"


def prediction_columns(class_names: list[str], *, multilabel: bool = False, ood: bool = False) -> list[str]:
    """The CSV header for a model with ``class_names`` (findings when ``multilabel``)."""
    return ["id", *(["findings"] if multilabel else ["predicted", "confidence"]), *[f"p:{c}" for c in class_names],
            *(["explained"] if multilabel else []), "concepts_for", "concepts_against",
            *(["ood_score", "ood_flag"] if ood else []), "model_version"]


def ood_detector(model_dir: str | Path) -> Any:
    """The out-of-distribution detector of a model directory (:func:`cbm.ood.fit_ood` on its
    evaluation data ``data.npz``), or None when it has no such data."""
    from cbm.data.evalfile import load_eval_data
    from cbm.ood import fit_ood

    data = Path(model_dir) / "data.npz"
    if not data.is_file():
        return None
    try:
        return fit_ood({s: d["X"] for s, d in load_eval_data(data).items()})
    except DataError:
        return None


def _version_label(session: Any) -> str:
    version = getattr(session.model, "version_", None)
    pending = len(session.pending)
    return f"{version}" + (f"+{pending}" if pending else "")


def _not_ours(out: Path, why: str) -> DataError:
    return DataError(f"{str(out)!r} {why}, so it is not this model's predictions (another model or a "
                     "different file?); it was left unchanged. Pass another --out or delete it.")


def _done_ids(out: Path, header: list[str], version: str) -> set[str]:
    """Ids already in ``out``; refuse (untouched) anything but this model version's own CSV.

    Only once the header and every complete row's ``model_version`` are verified is a partial last
    line (left by a crash mid-write) cut off.
    """
    if out.is_dir():
        raise DataError(f"--out {str(out)!r} is a folder; pass a CSV file path, e.g. "
                        f"{str(out / 'predictions.csv')!r}.")
    try:
        size = out.stat().st_size
    except FileNotFoundError:
        return set()
    except OSError as e:
        raise DataError(f"Cannot use --out {str(out)!r} ({e.strerror or e}); pass a CSV path in a folder "
                        "you can write to.") from None
    if size == 0:
        return set()
    done: set[str] = set()
    complete = 0  # bytes up to the end of the last complete line

    def complete_lines(fh: Any) -> Iterator[str]:
        nonlocal complete
        for line in fh:
            if not line.endswith(b"\n"):
                return  # the torn last line of a crash, or the end of a file that is not ours
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_ours(out, f"is not UTF-8 text (line {reader.line_num + 1})") from None
            complete += len(line)
            yield text

    try:
        with open(out, "rb") as fh:
            reader = csv.reader(complete_lines(fh))
            found = next(reader, None)
            if found is None or [unescape_csv_cell(c) for c in found] != header:
                why = "has no complete first line" if found is None else "has other columns"
                raise _not_ours(out, why)
            for row in reader:
                if len(row) != len(header):
                    raise DataError(f"{str(out)!r} has a damaged row (line {reader.line_num}); delete the "
                                    "row or the file, then run again.")
                if unescape_csv_cell(row[-1]) != version:
                    raise DataError(f"{str(out)!r} holds predictions of model version {row[-1]!r}, but the "
                                    f"model is now at {version!r}; pass another --out or delete it.")
                done.add(unescape_csv_cell(row[0]))
        if complete < size:  # verified as ours: the partial last line is cut before appending
            with open(out, "rb+") as fh:
                fh.truncate(complete)
    except csv.Error as e:
        raise _not_ours(out, f"is not a readable CSV ({e})") from None
    except PermissionError as e:
        raise DataError(f"--out {str(out)!r} cannot be read or written ({e.strerror}).") from None
    return done


def _append(out: Path, text: str) -> None:
    """Append ``text`` with one write, then flush it to disk."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise DataError(f"Cannot use --out {str(out)!r} ({e.strerror or e}); pass a CSV path in a folder "
                        "you can write to.") from None
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _format(names: list[str], contrib: np.ndarray, idx: np.ndarray, positive: bool) -> str:
    return "; ".join(f"{names[j]} ({contrib[j]:+.3f})" for j in idx
                     if contrib[j] != 0 and (contrib[j] > 0) == positive)


def _rows(model: Any, ids: list[str], X: np.ndarray, top: int, version: str, ood: Any = None) -> str:
    """CSV text of one batch."""
    X = np.asarray(X, np.float32)
    e = explain(model, X, top=top)
    multilabel = getattr(model, "multilabel_", False)
    proba = 1 / (1 + np.exp(-np.clip(e.logits.astype(np.float64), -60, 60))) if multilabel else softmax(e.logits)
    score = None if ood is None else ood.score(X)
    buf = io.StringIO()
    writer = csv_writer(buf, lineterminator="\n")  # formula-like names are neutralised
    for i, rid in enumerate(ids):
        k = int(e.target[i])
        called = ("; ".join(c for c, p in zip(e.class_names, proba[i], strict=True) if p >= PRESENT_THRESHOLD)
                  if multilabel else e.class_names[k])
        writer.writerow([rid, called, *([] if multilabel else [f"{proba[i][k]:.6f}"]), *[f"{p:.6f}" for p in proba[i]],
                         *([e.class_names[k]] if multilabel else []),
                         _format(e.concept_names, e.contributions[i], e.top_positive[i], True),
                         _format(e.concept_names, e.contributions[i], e.top_negative[i], False),
                         *([] if score is None else [f"{score[i]:.3f}", int(score[i] > ood.threshold_)]),
                         version])
    return buf.getvalue()


def _cache_batches(path: Path, model: Any, batch_size: int) -> tuple[int, Iterator[tuple[list[str], np.ndarray]]]:
    from cbm.store import EmbeddingCache

    require_images(model, f"the pooled embeddings of cache {str(path)!r}")
    cache = EmbeddingCache(path)
    data_fp = cache.manifest.get("encoder")
    model_fp = (model_encoder_record(model) or EncoderRecord()).fingerprint
    if data_fp and model_fp and data_fp != model_fp:
        raise EncoderMismatchError(f"Embedding cache {str(path)!r} was embedded by {data_fp!r}, but the "
                                   f"model was trained on {model_fp!r}; embed the images with the "
                                   "model's encoder (or pass the image folder instead).")
    if cache.dim != getattr(model, "n_features_in_", cache.dim):
        raise DataError(f"Embedding cache {str(path)!r} has {cache.dim}-dimensional embeddings; the model "
                        f"expects {model.n_features_in_}.")
    ids = cache.ids

    def gen() -> Iterator[tuple[list[str], np.ndarray]]:
        for start, block in cache.iter_blocks(batch_size, dtype=np.float32):
            yield ids[start:start + len(block)], block

    return len(cache), gen()


def _image_batches(dataset: Any, model: Any, batch_size: int, pretrained: str | None,
                   skipped: list[str], done: set[str]) -> Iterator[tuple[list[str], np.ndarray]]:
    encoder = None
    todo = [i for i, rid in enumerate(dataset.ids) if rid not in done]
    for start in range(0, len(todo), batch_size):
        ids, images = [], []
        for i in todo[start:start + batch_size]:
            try:
                images.append(dataset[i])
            except DataError as err:
                skipped.append(str(err))
                continue
            ids.append(dataset.ids[i])
        if not images:
            yield [], np.zeros((0, 0), np.float32)
            continue
        if encoder is None:  # only now: a folder of unreadable files never loads torch
            encoder = encoder_for(model, pretrained)
        # with the model's source repair (NeutraliseAtSource) applied, when it has one
        yield ids, embed_for_model(model, images, encoder).reshape(len(images), -1)


def _open_source(source: Path, root: str | Path | None, max_pixels: int | None) -> Any:
    """An ImageDataset for an image folder or manifest; None for an embedding cache folder."""
    from cbm.data import image_folder, read_manifest

    if source.is_dir():
        if (source / "manifest.json").is_file():
            return None
        ds = image_folder(source)
    elif source.suffix.lower() in MANIFEST_SUFFIXES:
        ds = read_manifest(source, root=root)
    elif source.exists():
        raise DataError(f"SOURCE {str(source)!r} is neither an image folder, a manifest "
                        f"({', '.join(MANIFEST_SUFFIXES)}) nor an embedding cache folder.")
    else:
        raise FileNotFoundError(f"SOURCE {str(source)!r} not found; pass an image folder, a manifest "
                                "or an embedding cache folder (`cbm embed` output).")
    ds.max_pixels = max_pixels
    return ds


def predict_to_csv(model_dir: str | Path, source: str | Path, out: str | Path, *, top: int = 3,
                   batch_size: int | None = None, pretrained: str | None = None,
                   root: str | Path | None = None, max_pixels: int | None = None,
                   progress: bool = True, with_ood: bool = True) -> PredictStats:
    """Predict and explain every image of ``source`` with the model in ``model_dir``; append to ``out``.

    Parameters
    ----------
    model_dir : path
        Model directory (its current version, with unsaved edits applied).
    source : path
        An image folder (``<class>/<image>`` or flat), a CSV/JSONL manifest (``path`` column), or
        an embedding cache folder written by ``cbm embed`` (with the model's encoder).
    out : path
        The CSV; when it exists, ids already in it are skipped (resume).
    top : int
        Concepts listed for and against each prediction.
    batch_size : int, optional
        Rows per batch (default 4096 embeddings, or 32 images to embed).
    pretrained : str, optional
        The encoder's checkpoint, if it moved since training (images only).
    with_ood : bool
        Add the ``ood_score`` and ``ood_flag`` columns when the model directory has evaluation
        data to calibrate them on (default True).
    """
    from tqdm.auto import tqdm

    from cbm.edits.history import EditSession

    if top < 0:
        raise ValueError(f"top must be >= 0; got {top}.")
    out, source = Path(out), Path(source).expanduser()
    dataset = _open_source(source, root, max_pixels)
    session = EditSession(model_dir)
    model, version = session.model, _version_label(session)
    ood = ood_detector(model_dir) if with_ood else None
    header = prediction_columns(list(model.class_names_), multilabel=getattr(model, "multilabel_", False),
                                ood=ood is not None)
    done = _done_ids(out, header, version)
    stats = PredictStats(out=out, model_version=version, resumed=len(done),
                         ood_threshold=None if ood is None else ood.threshold_)
    if dataset is None:
        total, batches = _cache_batches(source, model, batch_size or 4096)
    else:
        total = len(dataset)
        batches = _image_batches(dataset, model, batch_size or 32, pretrained, stats.skipped, done)
    stats.total = total
    if not out.exists() or out.stat().st_size == 0:
        buf = io.StringIO()
        csv_writer(buf, lineterminator="\n").writerow(header)
        _append(out, buf.getvalue())
    bar = tqdm(total=total, initial=len(done) if dataset is not None else 0, unit="img",
               desc="predict", disable=not progress, leave=False)
    n_skipped = 0
    try:
        for ids, X in batches:
            if dataset is None:  # a cache streams every row; drop those already written
                keep = [i for i, rid in enumerate(ids) if rid not in done]
                bar.update(len(ids))
                ids, X = [ids[i] for i in keep], X[keep]
            else:
                bar.update(len(ids) + len(stats.skipped) - n_skipped)
                n_skipped = len(stats.skipped)
            if not ids:
                continue
            _append(out, _rows(model, ids, X, top, version, ood))
            stats.written += len(ids)
    finally:
        bar.close()
    return stats
