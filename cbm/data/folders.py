"""Image datasets: a folder with one sub-folder per class, a CSV/JSONL manifest, or in-memory arrays.

Every loader returns an :class:`ImageDataset`: ``ds[i]`` is an RGB PIL image (grayscale, palette
and RGBA are converted; RGBA is composited on white), ``ds.labels`` class indices into
``ds.classes``, optional ``ds.domains`` / ``ds.splits``, ``ds.ids`` and a stable
``ds.fingerprint`` (hash of paths + sizes + mtimes, or of the pixel arrays) used to key caches::

    ds = image_folder("photos/")                 # photos/<class>/<image>.jpg
    ds = read_manifest("data.csv")               # columns: path, label[, split][, domain|site|group][, id]
    ds = load_digits_images()                    # scikit-learn digits, 8x8, for small tests

An image that cannot be read raises :class:`cbm.exceptions.DataError` naming the file; the
embedding store skips such images and reports them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cbm.data.dicom import DICOM_EXTENSIONS, is_dicom
from cbm.data.images import DEFAULT_MAX_PIXELS, check_max_pixels, read_image, to_rgb
from cbm.exceptions import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
                    *DICOM_EXTENSIONS)


def open_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, or raise DataError naming the file and the fix.

    The same reader as everywhere else (:func:`cbm.data.images.read_image`): pixel cap, 16-bit,
    palette and transparency handled alike.
    """
    return read_image(path, max_pixels=max_pixels)


class ImageDataset(Sequence):
    """Images from files (``paths``) or a uint8 array (``images``), with optional labels.

    Parameters
    ----------
    paths : list of path, optional
        Image files; exactly one of ``paths`` / ``images``.
    labels : array-like of int, optional
        Class index per image (into ``classes``).
    images : ndarray of shape (N, H, W) or (N, H, W, C), uint8, optional
    classes : list of str, optional
    domains, splits, ids : list of str, optional
        Per-image domain/site, split name and identifier (default: relative path or index).
    root : path, optional
        Folder that ``ids`` are relative to.
    name : str
        Short description used in messages.
    ignored : list of path
        Files that were found but are not images (reported, never used).
    max_pixels : int, optional
        Pixel cap of :func:`cbm.data.images.read_image` (default ``$CBM_MAX_IMAGE_PIXELS`` or
        100 million); a bigger image raises ``ImageTooLargeError`` and is skipped by the store.
    """

    def __init__(self, paths: Sequence[str | Path] | None = None, labels: Sequence[int] | None = None,
                 *, images: np.ndarray | None = None, classes: Sequence[str] | None = None,
                 domains: Sequence[str] | None = None, splits: Sequence[str] | None = None,
                 ids: Sequence[str] | None = None, root: str | Path | None = None,
                 name: str = "images", ignored: Sequence[str | Path] = (),
                 max_pixels: int | None = None) -> None:
        if (paths is None) == (images is None):
            raise ValueError("ImageDataset needs exactly one of paths= or images=.")
        self.paths = None if paths is None else [Path(p) for p in paths]
        self.images = None if images is None else np.asarray(images)
        n = len(self.paths) if self.paths is not None else len(self.images)
        self.root = Path(root) if root is not None else None
        self.name = name
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.classes = list(classes) if classes is not None else (
            [str(c) for c in range(int(self.labels.max()) + 1)] if self.labels is not None and n else [])
        self.domains = None if domains is None else [str(d) for d in domains]
        self.splits = None if splits is None else [str(s) for s in splits]
        self.ignored = [Path(p) for p in ignored]
        self.max_pixels = max_pixels
        if ids is None:
            ids = [self._rel(p) for p in self.paths] if self.paths is not None else [str(i) for i in range(n)]
        self.ids = [str(i) for i in ids]
        for what, seq in (("labels", self.labels), ("domains", self.domains), ("splits", self.splits),
                          ("ids", self.ids)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{what} has {len(seq)} entries but the dataset has {n} images.")

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix() if self.root else str(p)
        except ValueError:
            return str(p)

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.images)

    def __getitem__(self, i: int) -> Image.Image:  # type: ignore[override]
        if self.paths is not None:
            return open_image(self.paths[i], self.max_pixels)
        return to_rgb(self.images[i])

    def source(self, i: int) -> str:
        """File path (or ``name[i]``) of image ``i``, for messages."""
        return str(self.paths[i]) if self.paths is not None else f"{self.name}[{i}]"

    @cached_property
    def fingerprint(self) -> str:
        """Stable hash of the image sources (paths+sizes+mtimes, or pixels), labels, sites and splits."""
        h = hashlib.sha256()
        if self.paths is not None:
            for p, rid in zip(self.paths, self.ids, strict=True):
                try:
                    st = p.stat()
                    h.update(f"{rid}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                except OSError:
                    h.update(f"{rid}\0missing\n".encode())
        else:
            h.update(f"{self.images.shape}{self.images.dtype}".encode())
            h.update(np.ascontiguousarray(self.images).tobytes())
        cap = check_max_pixels(self.max_pixels)
        if self.paths is not None and cap != DEFAULT_MAX_PIXELS:  # another cap, other skips
            h.update(f"max_pixels={cap}".encode())
        if self.labels is not None:
            h.update(self.labels.tobytes())
            h.update("\0".join(self.classes).encode())
        for what, seq in (("domains", self.domains), ("splits", self.splits)):  # kept per row by caches
            if seq is not None:
                h.update(f"{what}=".encode() + "\0".join(seq).encode())
        return f"{self.name}:{len(self)}:{h.hexdigest()[:24]}"

    def subset(self, indices: Sequence[int]) -> ImageDataset:
        """A new dataset with the rows ``indices`` (its fingerprint differs)."""
        idx = np.asarray(indices, dtype=np.int64)

        def pick(seq: Sequence[Any] | None) -> list[Any] | None:
            return None if seq is None else [seq[i] for i in idx]

        return ImageDataset(
            pick(self.paths), None if self.labels is None else self.labels[idx],
            images=None if self.images is None else self.images[idx], classes=self.classes,
            domains=pick(self.domains), splits=pick(self.splits), ids=pick(self.ids), root=self.root,
            name=self.name, max_pixels=self.max_pixels)

    def __repr__(self) -> str:
        kind = "files" if self.paths is not None else f"array {tuple(self.images.shape)}"
        return f"ImageDataset({self.name!r}, n={len(self)}, classes={len(self.classes)}, {kind})"


def image_folder(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageDataset:
    """Dataset from ``root/<class>/<image>`` (sub-folders searched recursively).

    A flat folder of images (no class sub-folders) gives an unlabeled dataset. A file with the
    DICOM marker ('DICM' at byte 128) is read whatever its name (scanners often write files with
    no extension) when ``extensions`` includes the DICOM ones. Other files that are not images by
    extension are listed in ``ds.ignored`` and reported with a warning.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {str(root)!r} not found or not a folder; expected "
                                "<folder>/<class name>/<image files>.")
    exts = {e.lower() for e in extensions}
    sniff_dicom = bool(exts & set(DICOM_EXTENSIONS))
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels, ignored = [], [], []
    groups = [(i, d, sorted(d.rglob("*"))) for i, d in enumerate(class_dirs)] or [(-1, root, sorted(root.iterdir()))]
    for label, _, files in groups:
        for f in files:
            if not f.is_file() or f.name.startswith("."):
                continue
            if f.suffix.lower() in exts or (sniff_dicom and _has_dicom_marker(f)):
                paths.append(f)
                labels.append(label)
            else:
                ignored.append(f)
    if not paths:
        raise DataError(f"No images found in {str(root)!r} (looked for {', '.join(sorted(exts))} inside "
                        f"class sub-folders); {len(ignored)} other file(s) were ignored. Put images in "
                        "<folder>/<class name>/.")
    if ignored:
        warnings.warn(f"{len(ignored)} non-image file(s) in {str(root)!r} ignored, e.g. "
                      f"{str(ignored[0])!r}.", stacklevel=2)
    labeled = bool(class_dirs)
    return ImageDataset(paths, labels if labeled else None, classes=[d.name for d in class_dirs] if labeled else None,
                        root=root, name=root.name, ignored=ignored)


def _has_dicom_marker(path: Path) -> bool:
    """Whether ``path`` starts like a DICOM Part 10 file ('DICM' at byte 128), whatever its name."""
    try:
        with open(path, "rb") as fh:
            return is_dicom(fh.read(132))
    except OSError:
        return False


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"Manifest {str(path)!r} line {lineno} is not valid JSON ({e.msg}); "
                                "each line must be an object like {\"path\": ..., \"label\": ...}.") from None
            if not isinstance(row, dict):
                raise DataError(f"Manifest {str(path)!r} line {lineno} is not a JSON object.")
            rows.append(row)
        return rows
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_manifest(path: str | Path, root: str | Path | None = None) -> ImageDataset:
    """Dataset from a CSV or JSONL manifest with columns ``path``, ``label`` and optionally
    ``split``, ``domain`` (or ``site``, or ``group``) and ``id``. Relative paths are resolved against ``root``
    (default: the manifest's folder).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Manifest {str(path)!r} not found; pass a .csv or .jsonl file.")
    try:
        rows = _manifest_rows(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"Manifest {str(path)!r} cannot be read as UTF-8 CSV/JSONL text ({e}); save it as UTF-8 "
                        "text with columns path, label[, split][, domain][, id].") from None
    if not rows:
        raise DataError(f"Manifest {str(path)!r} has no rows; add one row per image (path, label).")
    if "path" not in rows[0]:
        raise DataError(f"Manifest {str(path)!r} has no 'path' column (columns: {sorted(k for k in rows[0] if k)}); "
                        "expected path, label[, split][, domain][, id].")
    blank = next((i for i, r in enumerate(rows, 1) if not isinstance(r.get("path"), str) or not r["path"]), None)
    if blank is not None:
        raise DataError(f"Manifest {str(path)!r} row {blank} has no path (or not a text one); give every row "
                        "a path to an image.")
    base = Path(root) if root is not None else path.parent
    paths = [Path(r["path"]) if Path(r["path"]).is_absolute() else base / r["path"] for r in rows]
    labels = classes = None
    if any(r.get("label") not in (None, "") for r in rows):
        names = [str(r.get("label", "")) for r in rows]
        if "" in names:
            line = names.index("")
            raise DataError(f"Manifest {str(path)!r} row {line + 1} ({rows[line]['path']!r}) has no label; "
                            "give every row a label or none.")
        numeric = all(c.lstrip("-").isdigit() for c in names)
        classes = sorted(set(names), key=(lambda c: (int(c), c)) if numeric else None)
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[c] for c in names]

    def col(*keys: str) -> list[str] | None:  # an optional column (first of its aliases), or None
        if not any(r.get(k) not in (None, "") for r in rows for k in keys):
            return None
        return [str(next((r[k] for k in keys if r.get(k) not in (None, "")), "")) for r in rows]

    return ImageDataset(paths, labels, classes=classes, domains=col("domain", "site", "group"), splits=col("split"),
                        ids=col("id") or [str(r["path"]) for r in rows], root=base, name=path.stem)


def load_digits_images(n: int | None = None) -> ImageDataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes) as a small array dataset."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    labels = d.target.astype(np.int64)
    if n is not None:
        images, labels = images[:n], labels[:n]
    return ImageDataset(images=images, labels=labels, classes=[str(c) for c in range(10)], name="digits")
