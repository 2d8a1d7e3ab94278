"""Per-image concept annotations: which concepts each image shows, read from the formats people have.

:class:`ConceptAnnotations` is one table, image ids x concept names, with values in [0, 1] (1 present,
0 absent, fractions for soft labels), NaN where an image was not annotated for a concept, an
optional per-label certainty and an optional per-concept annotation cost. Readers:

* :func:`read_cub`: CUB-200-2011 (``attributes/image_attribute_labels.txt`` with certainties and
  annotation times, ``attributes.txt``, ``images.txt``); the known malformed lines with an extra
  column are read from their first four fields and their last one.
* :func:`read_awa`: Animals with Attributes class-attribute matrices (``predicate-matrix-binary.txt``
  or ``-continuous.txt``, ``predicates.txt``, ``classes.txt``), expanded to images by class.
* :func:`read_long`: a generic long table (CSV, TSV or Parquet) with columns image id, concept, value
  (and optionally certainty).
* :func:`from_array`: arrays in memory (e.g. the demo's garment labels, ``cbm.demo.garments.concept_labels``).

:func:`read_annotations` picks the reader from what a path looks like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import unescape_csv_cell
from cbm.exceptions import DataError, unknown_name_message

#: CUB-200-2011 certainty ids (``attributes/certainties.txt``).
CUB_CERTAINTIES = {1: "not visible", 2: "guessing", 3: "probably", 4: "definitely"}


@dataclass
class ConceptAnnotations:
    """Per-image concept labels.

    Attributes
    ----------
    ids : ndarray of shape (N,), str
        Image ids (unique), e.g. relative image paths as :func:`cbm.data.image_folder` names them.
    concepts : list of str, length M
        Concept names (unique).
    values : ndarray of shape (N, M), float32
        1 present, 0 absent, values in between for soft labels, NaN for "not annotated".
    certainty : ndarray of shape (N, M) or None
        Annotator certainty per label (CUB: 1 not visible ... 4 definitely), NaN where missing.
    cost : ndarray of shape (M,) or None
        Cost of asking for each concept (CUB: mean annotation time in seconds), used by
        cost-aware intervention policies.
    source : str
        Where the labels came from ("cub", "awa", "long", "array", "demo").
    """

    ids: np.ndarray
    concepts: list[str]
    values: np.ndarray
    certainty: np.ndarray | None = None
    cost: np.ndarray | None = None
    source: str = "array"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray([str(i) for i in np.asarray(self.ids).ravel()])
        self.concepts = [str(c) for c in self.concepts]
        self.values = np.asarray(self.values, np.float32)
        n, m = len(self.ids), len(self.concepts)
        if self.values.shape != (n, m):
            raise DataError(f"Concept annotations: values have shape {self.values.shape} but there are {n} "
                            f"image ids and {m} concepts; expected ({n}, {m}).")
        for what, seq in (("image id", self.ids.tolist()), ("concept", self.concepts)):
            if len(set(seq)) != len(seq):
                dup = next(s for i, s in enumerate(seq) if s in seq[:i])
                raise DataError(f"Concept annotations list {what} {dup!r} more than once; {what}s must be unique.")
        bad = np.isfinite(self.values) & ((self.values < 0) | (self.values > 1))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"Concept annotations: value {float(self.values[i, j])!r} for image {self.ids[i]!r}, "
                            f"concept {self.concepts[j]!r} is outside [0, 1]; use 1 (present), 0 (absent), a "
                            "fraction for soft labels, or NaN for unknown.")
        self.values[np.isinf(self.values)] = np.nan
        if self.certainty is not None:
            self.certainty = np.asarray(self.certainty, np.float32)
            if self.certainty.shape != (n, m):
                raise DataError(f"Concept annotations: certainty has shape {self.certainty.shape}, expected ({n}, {m}).")
        if self.cost is not None:
            self.cost = np.asarray(self.cost, np.float32).ravel()
            if self.cost.shape != (m,) or not (self.cost > 0).all():
                raise DataError(f"Concept annotations: cost must be {m} positive numbers (one per concept); "
                                f"got shape {self.cost.shape}.")

    # -- shape and views ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"ConceptAnnotations({self.source!r}, images={len(self)}, concepts={len(self.concepts)}, "
                f"annotated={self.coverage:.0%})")

    @property
    def coverage(self) -> float:
        """Share of (image, concept) cells that are annotated."""
        return float(np.isfinite(self.values).mean()) if self.values.size else 0.0

    @property
    def is_binary(self) -> bool:
        """True when every annotated value is 0 or 1."""
        v = self.values[np.isfinite(self.values)]
        return bool(np.isin(v, (0.0, 1.0)).all())

    def binary(self, threshold: float = 0.5) -> np.ndarray:
        """Values as 0/1 floats (``>= threshold``), NaN kept where not annotated."""
        out = (self.values >= threshold).astype(np.float32)
        out[~np.isfinite(self.values)] = np.nan
        return out

    def _replace(self, **changes: Any) -> ConceptAnnotations:
        kw = dict(ids=self.ids, concepts=self.concepts, values=self.values, certainty=self.certainty,
                  cost=self.cost, source=self.source, metadata=dict(self.metadata))
        kw.update(changes)
        return ConceptAnnotations(**kw)

    def select(self, concepts: Sequence[str]) -> ConceptAnnotations:
        """Only ``concepts``, in that order; an unknown name is an error naming the closest ones."""
        index = {c: j for j, c in enumerate(self.concepts)}
        for c in concepts:
            if c not in index:
                raise DataError(unknown_name_message("annotated concept", str(c), self.concepts))
        cols = [index[c] for c in concepts]
        return self._replace(concepts=list(concepts), values=self.values[:, cols],
                             certainty=None if self.certainty is None else self.certainty[:, cols],
                             cost=None if self.cost is None else self.cost[cols])

    def for_ids(self, ids: Sequence[str], missing: str = "nan") -> ConceptAnnotations:
        """Rows in the order of ``ids``; images without annotations get NaN rows (``missing="nan"``)
        or raise (``missing="error"``)."""
        ids = [str(i) for i in np.asarray(ids).ravel()]
        pos = {s: i for i, s in enumerate(self.ids.tolist())}
        rows = np.asarray([pos.get(i, -1) for i in ids], np.int64)
        if missing == "error" and (rows < 0).any():
            lost = [i for i, r in zip(ids, rows, strict=True) if r < 0]
            raise DataError(f"{len(lost)} image id(s) have no concept annotations, e.g. {lost[0]!r}; annotated "
                            f"ids look like {self.ids[:2].tolist()}. Check that both use the same id format.")

        def take(a: np.ndarray) -> np.ndarray:
            out = np.full((len(ids), a.shape[1]), np.nan, np.float32)
            out[rows >= 0] = a[rows[rows >= 0]]
            return out

        return self._replace(ids=np.asarray(ids), values=take(self.values),
                             certainty=None if self.certainty is None else take(self.certainty))

    def align(self, concept_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Match ``concept_names`` (a model's concepts) to annotated concepts.

        Names match exactly, then ignoring case, underscores and repeated spaces. Returns
        ``(model_cols, ann_cols)``: index arrays into ``concept_names`` and into :attr:`concepts`.
        """
        exact = {c: j for j, c in enumerate(self.concepts)}
        loose = {_norm(c): j for j, c in enumerate(self.concepts)}
        pairs = []
        for i, name in enumerate(concept_names):
            j = exact.get(str(name), loose.get(_norm(str(name))))
            if j is not None:
                pairs.append((i, j))
        a, b = (np.asarray(x, np.int64) for x in zip(*pairs, strict=True)) if pairs else (
            np.zeros(0, np.int64), np.zeros(0, np.int64))
        return a, b

    def matrix_for(self, concept_names: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """Labels (N, M) in the column order of ``concept_names`` (a model's concepts) and the row order
        of ``ids`` (default: as stored); NaN for concepts or images without annotations."""
        ann = self if ids is None else self.for_ids(ids)
        out = np.full((len(ann), len(concept_names)), np.nan, np.float32)
        model_cols, ann_cols = ann.align(concept_names)
        out[:, model_cols] = ann.values[:, ann_cols]
        return out

    def cost_for(self, concept_names: Sequence[str]) -> np.ndarray | None:
        """Per-concept cost (M,) in the order of ``concept_names``; 1 where unknown; None without costs."""
        if self.cost is None:
            return None
        out = np.ones(len(concept_names), np.float32)
        model_cols, ann_cols = self.align(concept_names)
        out[model_cols] = self.cost[ann_cols]
        return out

    def mask_uncertain(self, min_certainty: float) -> ConceptAnnotations:
        """NaN where the certainty is below ``min_certainty`` (CUB: 3 keeps "probably" and "definitely")."""
        if self.certainty is None:
            raise DataError("These concept annotations have no certainty column; nothing to mask.")
        values = self.values.copy()
        values[~(self.certainty >= min_certainty)] = np.nan
        return self._replace(values=values)

    # -- long format -------------------------------------------------------------------------------
    def to_frame(self) -> Any:
        """Long pandas DataFrame: ``image_id, concept, value`` (and ``certainty``), annotated cells only."""
        import pandas as pd

        i, j = np.nonzero(np.isfinite(self.values))
        cols = {"image_id": self.ids[i], "concept": np.asarray(self.concepts, dtype=object)[j],
                "value": self.values[i, j]}
        if self.certainty is not None:
            cols["certainty"] = self.certainty[i, j]
        return pd.DataFrame(cols)

    def save(self, path: str | Path) -> Path:
        """Write the long format as ``.csv`` or ``.parquet`` (by suffix), atomically; :func:`read_long` reads it."""
        from cbm._io import atomic_path, safe_csv_frame

        path = Path(path)
        df = self.to_frame()
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".parquet":
                df.to_parquet(tmp, index=False)
            elif path.suffix.lower() in (".csv", ".tsv"):
                df = safe_csv_frame(df)  # formula-like names are neutralised; read_long undoes it
                df.to_csv(tmp, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
            else:
                raise DataError(f"Cannot save concept annotations as {path.name!r}; use a .csv, .tsv or .parquet name.")
        return path


# -- readers -----------------------------------------------------------------------------------------
def from_array(values: Any, concepts: Sequence[str], ids: Sequence[str] | None = None, *,
               unknown: float | None = -1, source: str = "array") -> ConceptAnnotations:
    """Annotations from an (N, M) array; entries equal to ``unknown`` (default -1) become NaN."""
    v = np.asarray(values, np.float32).copy()
    if v.ndim != 2:
        raise DataError(f"Concept labels must be a 2-D array (images x concepts); got shape {v.shape}.")
    if unknown is not None:
        v[v == unknown] = np.nan
    ids = [str(i) for i in range(len(v))] if ids is None else ids
    return ConceptAnnotations(np.asarray(ids), list(concepts), v, source=source)


def read_cub(root: str | Path, *, min_certainty: int | None = None) -> ConceptAnnotations:
    """CUB-200-2011's 312 binary attributes for its 11,788 images.

    Parameters
    ----------
    root : path
        The ``CUB_200_2011`` folder (with ``images.txt`` and ``attributes/``), or the folder above it.
        ``attributes.txt`` is looked up in ``attributes/``, in ``root`` and in its parent (the
        official archive puts it next to ``CUB_200_2011/``).
    min_certainty : int, optional
        Labels with a lower certainty id (1 not visible, 2 guessing, 3 probably, 4 definitely)
        become NaN.

    Returns
    -------
    ConceptAnnotations
        ids are image paths from ``images.txt`` (``001.Black_footed_Albatross/..._0046_18.jpg``), as
        :func:`cbm.data.image_folder` names the files of ``CUB_200_2011/images``; concepts are the
        attribute names (``has_bill_shape::curved_(up_or_down)``); ``cost`` is the mean annotation
        time per attribute in seconds.
    """
    base = _cub_base(Path(root).expanduser())
    labels_path = base / "attributes" / "image_attribute_labels.txt"
    names = _id_table(_first_file([base / "attributes" / "attributes.txt", base / "attributes.txt",
                                   base.parent / "attributes.txt"], "attributes.txt", base))
    images = _id_table(_first_file([base / "images.txt"], "images.txt", base))
    img_ids, attr_ids, present, certainty, times, malformed = _read_cub_labels(labels_path)
    img_keys, attr_keys = sorted(images), sorted(names)
    img_pos = np.full(max(img_keys) + 1, -1, np.int64)
    img_pos[img_keys] = np.arange(len(img_keys))
    attr_pos = np.full(max(attr_keys) + 1, -1, np.int64)
    attr_pos[attr_keys] = np.arange(len(attr_keys))
    known = (img_ids < len(img_pos)) & (attr_ids < len(attr_pos))
    rows = np.where(known, img_pos[np.minimum(img_ids, len(img_pos) - 1)], -1)
    cols = np.where(known, attr_pos[np.minimum(attr_ids, len(attr_pos) - 1)], -1)
    if (rows < 0).any() or (cols < 0).any():
        k = int(np.flatnonzero((rows < 0) | (cols < 0))[0])
        raise DataError(f"{str(labels_path)!r} refers to image {int(img_ids[k])} / attribute {int(attr_ids[k])}, "
                        "which images.txt / attributes.txt do not list; use the files of one CUB release.")
    shape = (len(img_keys), len(attr_keys))
    values = np.full(shape, np.nan, np.float32)
    cert = np.full(shape, np.nan, np.float32)
    values[rows, cols] = present
    cert[rows, cols] = certainty
    time_sum = np.bincount(cols, weights=np.clip(times, 0, None), minlength=shape[1])
    time_n = np.bincount(cols, minlength=shape[1])
    cost = np.where(time_n > 0, time_sum / np.maximum(time_n, 1), 0.0)
    cost = np.where(cost > 0, cost, cost[cost > 0].mean() if (cost > 0).any() else 1.0)
    ann = ConceptAnnotations(np.asarray([images[i] for i in img_keys]), [names[a] for a in attr_keys], values,
                             certainty=cert, cost=cost, source="cub",
                             metadata={"root": str(base), "malformed_lines": malformed,
                                       "certainties": CUB_CERTAINTIES})
    return ann if min_certainty is None else ann.mask_uncertain(min_certainty)


def _cub_base(root: Path) -> Path:
    for base in (root, root / "CUB_200_2011"):
        if (base / "attributes" / "image_attribute_labels.txt").is_file():
            return base
    raise FileNotFoundError(f"No CUB-200-2011 attribute labels under {str(root)!r}: expected "
                            "CUB_200_2011/attributes/image_attribute_labels.txt (from CUB_200_2011.tgz).")


def _first_file(candidates: Sequence[Path], what: str, base: Path) -> Path:
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(f"CUB-200-2011 {what} not found near {str(base)!r} (looked in "
                            f"{', '.join(str(p.parent) for p in candidates)}).")


def _id_table(path: Path) -> dict[int, str]:
    """``<id> <name>`` lines (CUB's images.txt, attributes.txt; AwA's classes.txt, predicates.txt)."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{str(path)!r} line {n}: expected '<id> <name>'; got {line!r}.")
        out[int(parts[0])] = parts[1].strip()
    if not out:
        raise DataError(f"{str(path)!r} is empty; expected '<id> <name>' lines.")
    return out


def _read_cub_labels(path: Path) -> tuple[np.ndarray, ...]:
    """``<image> <attribute> <is_present> <certainty> <time>`` rows as arrays, and the malformed-line count.

    A few lines of the official file carry an extra column; they are read from their first four
    fields and their last one (the time).
    """
    img, attr, pres, cert, times = [], [], [], [], []
    malformed = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                a, b, c, d = (int(float(x)) for x in parts[:4])
                t = float(parts[-1]) if len(parts) >= 5 else 0.0
            except ValueError:
                raise DataError(f"{str(path)!r} line {n}: expected '<image_id> <attribute_id> <is_present> "
                                f"<certainty_id> <time>'; got {line.strip()!r}.") from None
            if len(parts) != 5:
                malformed += 1
            if c not in (0, 1):
                raise DataError(f"{str(path)!r} line {n}: is_present must be 0 or 1; got {parts[2]!r}.")
            img.append(a)
            attr.append(b)
            pres.append(c)
            cert.append(d)
            times.append(t)
    if not img:
        raise DataError(f"{str(path)!r} has no attribute labels.")
    return (np.asarray(img, np.int64), np.asarray(attr, np.int64), np.asarray(pres, np.float32),
            np.asarray(cert, np.float32), np.asarray(times, np.float64), malformed)


def read_awa(root: str | Path, *, continuous: bool = False, images: Mapping[str, str] | None = None
             ) -> ConceptAnnotations:
    """Animals with Attributes (AwA, AwA2): a class x attribute matrix expanded to images by class.

    Parameters
    ----------
    root : path
        Folder with ``classes.txt``, ``predicates.txt`` and ``predicate-matrix-binary.txt`` (or
        ``predicate-matrix-continuous.txt``).
    continuous : bool
        Use the continuous matrix (0-100 association strengths, divided by 100; negative = NaN).
    images : mapping image id -> class name, optional
        Which images to label; default every file in ``root/JPEGImages/<class>/`` with ids
        ``<class>/<file>`` (as :func:`cbm.data.image_folder` on ``JPEGImages`` names them).
    """
    root = Path(root).expanduser()
    kind = "continuous" if continuous else "binary"
    matrix_path = root / f"predicate-matrix-{kind}.txt"
    for p in (root / "classes.txt", root / "predicates.txt", matrix_path):
        if not p.is_file():
            raise FileNotFoundError(f"AwA file {p.name!r} not found in {str(root)!r}; expected classes.txt, "
                                    f"predicates.txt and predicate-matrix-{kind}.txt (from AwA2-base.zip).")
    classes = _id_table(root / "classes.txt")
    predicates = _id_table(root / "predicates.txt")
    try:
        M = np.loadtxt(matrix_path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{str(matrix_path)!r} is not a numeric matrix ({e}).") from None
    class_names, concept_names = [classes[k] for k in sorted(classes)], [predicates[k] for k in sorted(predicates)]
    if M.shape != (len(class_names), len(concept_names)):
        raise DataError(f"{str(matrix_path)!r} has shape {M.shape} but classes.txt lists {len(class_names)} "
                        f"classes and predicates.txt {len(concept_names)} attributes.")
    if continuous:
        M = np.where(M < 0, np.nan, M / 100.0)
    elif not np.isin(M, (0, 1)).all():
        raise DataError(f"{str(matrix_path)!r} should hold only 0 and 1; pass continuous=True for the "
                        "continuous matrix.")
    if images is None:
        images = _awa_images(root / "JPEGImages", class_names)
    row = {c: i for i, c in enumerate(class_names)}
    unknown = sorted({c for c in images.values() if c not in row})
    if unknown:
        raise DataError(unknown_name_message("AwA class", unknown[0], class_names))
    ids = list(images)
    values = M[[row[images[i]] for i in ids]] if ids else np.zeros((0, len(concept_names)))
    return ConceptAnnotations(np.asarray(ids), concept_names, values, source="awa",
                              metadata={"root": str(root), "matrix": kind, "classes": class_names})


def _awa_images(folder: Path, class_names: Sequence[str]) -> dict[str, str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"No images folder {str(folder)!r}; pass images={{image_id: class_name}} or "
                                "put the AwA images in JPEGImages/<class>/.")
    out = {}
    for c in class_names:
        for f in sorted((folder / c).glob("*")) if (folder / c).is_dir() else []:
            if f.is_file() and not f.name.startswith("."):
                out[f"{c}/{f.name}"] = c
    return out


def read_long(path: str | Path, *, id_column: str = "image_id", concept_column: str = "concept",
              value_column: str = "value", certainty_column: str | None = "certainty") -> ConceptAnnotations:
    """A long table (``.csv``, ``.tsv`` or ``.parquet``): one row per (image, concept) label.

    Values may be 0/1, fractions in [0, 1], ``yes``/``no``/``true``/``false``, or empty for unknown.
    A (image, concept) pair given twice is an error.
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Concept annotation file {str(path)!r} not found.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={id_column: str})
        else:
            raise DataError(f"Cannot read concept annotations from {path.name!r}: use .csv, .tsv or .parquet.")
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"Concept annotation file {str(path)!r} cannot be read ({e}).") from None
    missing = [c for c in (id_column, concept_column, value_column) if c not in df.columns]
    if missing:
        raise DataError(f"{str(path)!r} has no column(s) {missing}; found {list(df.columns)}. Expected one row "
                        f"per label with columns {id_column!r}, {concept_column!r}, {value_column!r}.")
    df = df.dropna(subset=[id_column, concept_column])
    df[id_column] = df[id_column].astype(str).map(unescape_csv_cell)
    df[concept_column] = df[concept_column].astype(str).map(unescape_csv_cell)
    dup = df.duplicated([id_column, concept_column])
    if dup.any():
        r = df[dup].iloc[0]
        raise DataError(f"{str(path)!r} labels image {r[id_column]!r}, concept {r[concept_column]!r} more than once.")
    vals = _parse_values(df[value_column], path)
    ids = list(dict.fromkeys(df[id_column]))
    concepts = list(dict.fromkeys(df[concept_column]))
    rows = pd.Index(ids).get_indexer(df[id_column])
    cols = pd.Index(concepts).get_indexer(df[concept_column])
    values = np.full((len(ids), len(concepts)), np.nan, np.float32)
    values[rows, cols] = vals
    certainty = None
    if certainty_column and certainty_column in df.columns:
        certainty = np.full_like(values, np.nan)
        certainty[rows, cols] = pd.to_numeric(df[certainty_column], errors="coerce").to_numpy(np.float32)
    return ConceptAnnotations(np.asarray(ids), concepts, values, certainty=certainty, source="long",
                              metadata={"path": str(path)})


_WORDS = {"yes": 1.0, "true": 1.0, "present": 1.0, "no": 0.0, "false": 0.0, "absent": 0.0,
          "unknown": np.nan, "": np.nan, "nan": np.nan}


def _parse_values(col: Any, path: Path) -> np.ndarray:
    import pandas as pd

    if col.dtype.kind in "fiub":
        return col.to_numpy(np.float32)
    text = col.fillna("").astype(str).str.strip().str.lower()
    words = text.map(_WORDS)
    nums = pd.to_numeric(text.where(~text.isin(list(_WORDS))), errors="coerce")
    out = words.where(text.isin(list(_WORDS)), nums).astype(float)
    bad = out.isna() & ~text.isin(list(_WORDS))
    if bad.any():
        raise DataError(f"{str(path)!r}: value {col[bad].iloc[0]!r} is not a number in [0, 1] or yes/no/unknown.")
    return out.to_numpy(np.float32)


def read_annotations(path: str | Path, **kwargs: Any) -> ConceptAnnotations:
    """Read concept annotations, choosing the reader from the path.

    A CUB-200-2011 folder (or its ``image_attribute_labels.txt``) -> :func:`read_cub`; a folder with
    ``predicate-matrix-*.txt`` -> :func:`read_awa`; a ``.csv``/``.tsv``/``.parquet`` file ->
    :func:`read_long`.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.name == "image_attribute_labels.txt":
        return read_cub(path.parent.parent, **kwargs)
    if path.is_dir():
        if any((b / "attributes" / "image_attribute_labels.txt").is_file() for b in (path, path / "CUB_200_2011")):
            return read_cub(path, **kwargs)
        if (path / "predicate-matrix-binary.txt").is_file() or (path / "predicate-matrix-continuous.txt").is_file():
            if "continuous" not in kwargs and not (path / "predicate-matrix-binary.txt").is_file():
                kwargs["continuous"] = True
            return read_awa(path, **kwargs)
        raise DataError(f"{str(path)!r} is a folder but neither a CUB-200-2011 folder (attributes/"
                        "image_attribute_labels.txt) nor an AwA folder (predicate-matrix-binary.txt).")
    if not path.exists():
        raise FileNotFoundError(f"Concept annotations {str(path)!r} not found; give a CUB-200-2011 folder, an "
                                "AwA folder or a .csv/.parquet file with columns image_id, concept, value.")
    return read_long(path, **kwargs)


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


__all__ = ["CUB_CERTAINTIES", "ConceptAnnotations", "from_array", "read_annotations", "read_awa",
           "read_cub", "read_long"]


def __getattr__(name: str) -> Any:
    if name == "from_demo":  # the demo's labels live with the demo now
        raise AttributeError("cbm.research.annotations.from_demo was removed (the library no longer knows about the "
                             "demo's tag): use from_array(cbm.demo.garments.concept_labels(bank, y, stamped), "
                             "bank.names, ids), or the concepts_<split> arrays cbm demo writes to data.npz.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

