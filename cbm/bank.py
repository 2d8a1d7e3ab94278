"""ConceptBank: the named, human-readable concepts a bottleneck model scores, with provenance.

A bank holds concept names and texts, optional vectors (M x d) with intercepts, where each
concept came from (an LLM prompt, textbook passages, CAV example sets, ...), an optional
class-concept prior (K x M, values in {-1, 0, +1} or real weights) and free metadata.
It saves as JSON (text, provenance) plus safetensors (tensors); never pickle.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from cbm._io import atomic_path, atomic_write_json, read_json
from cbm.exceptions import CBMError, ClassMismatchError, EncoderMismatchError, unknown_name_message

#: the values of ``Provenance.source``: the tag each concept source (:mod:`cbm.concepts.sources`) writes,
#: and "manual" for concepts typed in by a person
PROVENANCE_SOURCES = ("llm", "textbook", "cav", "text", "manual", "file")
BANK_FORMAT = "cbmkit-concept-bank/1"


@dataclass
class Provenance:
    """Where one concept came from.

    ``detail`` holds what produced it: for ``llm`` the prompt, class and raw answer; for
    ``textbook`` the citations (``[{"doc", "passage_id", "text"}]``); for ``cav`` the example
    sets and accuracy.
    """

    source: str = "manual"
    detail: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    created: str | None = None

    def __post_init__(self) -> None:
        if self.source not in PROVENANCE_SOURCES:
            raise ValueError(
                f"Provenance source must be one of {PROVENANCE_SOURCES}; got {self.source!r}."
            )
        if self.created is None:
            self.created = _dt.date.today().isoformat()

    def summary(self) -> str:
        """One short line saying where the concept came from (app hovers, ``cbm concepts show``)."""
        d = self.detail or {}
        if self.source == "llm":
            classes = d.get("classes") or ([d["class"]] if d.get("class") else [])
            asked = f", asked about {', '.join(map(str, classes[:3]))}" if classes else ""
            return f"LLM ({self.model or 'unknown model'}){asked}"
        if self.source == "textbook":
            cites = d.get("citations") or []
            docs = sorted({str(c.get("doc", "?")) for c in cites})
            return f"textbook: {', '.join(docs[:2]) or 'passages'} ({len(cites)} passage(s))"
        if self.source == "cav":
            acc = d.get("val_acc", d.get("accuracy"))
            return "CAV from example images" + (f", held-out accuracy {acc:.0%}" if isinstance(acc, float) else "")
        if self.source == "text":
            return "text embedding" + (f" ({self.model})" if self.model else "")
        if self.source == "file":
            return f"imported from {d.get('path', 'a file')}"
        return "written by hand" + (f": {d['note']}" if isinstance(d.get("note"), str) else "")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        """Rebuild a provenance from its ``dataclasses.asdict`` form (unknown keys are ignored)."""
        return cls(**{k: d[k] for k in ("source", "detail", "model", "created") if k in d})


def normalize_text(text: str) -> str:
    """Canonical form used for de-duplication: lower case, single spaces, no end punctuation."""
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .;,:")


class ConceptBank:
    """Concepts with names, texts, optional vectors, provenance and a class-concept prior.

    Parameters
    ----------
    names : sequence of str, length M
        Short unique names ("long sleeves").
    texts : sequence of str, optional
        The text that is embedded or shown ("a garment with long sleeves"); defaults to names.
    vectors : array-like of shape (M, d), optional
        Concept directions (text embeddings or CAVs).
    intercepts : array-like of shape (M,), optional
        Per-concept intercepts (CAV bias), used by signed-margin projections.
    provenance : sequence of Provenance, optional
    classes : sequence of str, optional
        Class names the prior refers to.
    prior : array-like of shape (K, M), optional
        Class-concept prior: +1 yes, -1 no, 0 unknown (or real weights).
    metadata : mapping, optional
    encoder_fingerprint : str, optional
        Fingerprint of the encoder that produced ``vectors``.
    """

    def __init__(
        self,
        names: Sequence[str],
        texts: Sequence[str] | None = None,
        vectors: Any | None = None,
        intercepts: Any | None = None,
        provenance: Sequence[Provenance] | None = None,
        classes: Sequence[str] | None = None,
        prior: Any | None = None,
        metadata: Mapping[str, Any] | None = None,
        encoder_fingerprint: str | None = None,
    ) -> None:
        self.names = [str(n) for n in names]
        m = len(self.names)
        if len(set(self.names)) != m:
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"Concept names must be unique; duplicated: {dup[:5]}. Call dedupe().")
        self.texts = list(texts) if texts is not None else list(self.names)
        self._check_len("texts", len(self.texts))
        self.vectors = None if vectors is None else _as_2d_float(vectors, "vectors")
        if self.vectors is not None:
            self._check_len("vectors", self.vectors.shape[0])
        self.intercepts = None if intercepts is None else np.asarray(intercepts, np.float32).reshape(-1)
        if self.intercepts is not None:
            self._check_len("intercepts", self.intercepts.shape[0])
        self.provenance = list(provenance) if provenance is not None else [Provenance() for _ in self.names]
        self._check_len("provenance", len(self.provenance))
        self.classes = None if classes is None else [str(c) for c in classes]
        self.prior = None if prior is None else np.asarray(prior, np.float32)
        if self.prior is not None:
            if self.classes is None or self.prior.shape != (len(self.classes), m):
                raise ValueError(
                    f"prior must have shape (n_classes, n_concepts) = "
                    f"({len(self.classes or [])}, {m}); got {self.prior.shape}. Pass classes too."
                )
        self.metadata = dict(metadata or {})
        self.encoder_fingerprint = encoder_fingerprint

    def _check_len(self, what: str, n: int) -> None:
        if n != len(self.names):
            raise ValueError(f"ConceptBank got {len(self.names)} names but {n} {what}.")

    # -- basics ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __repr__(self) -> str:
        dim = None if self.vectors is None else self.vectors.shape[1]
        return (
            f"ConceptBank({len(self)} concepts, classes={len(self.classes or [])}, "
            f"vectors={'none' if dim is None else f'{dim}-d'}, prior={self.prior is not None})"
        )

    @property
    def dim(self) -> int | None:
        """Length of the concept vectors, or None when the bank has no vectors."""
        return None if self.vectors is None else int(self.vectors.shape[1])

    def index(self, name: str) -> int:
        """Position of concept ``name``; a miss lists the closest names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(unknown_name_message("concept", name, self.names)) from None

    def class_index(self, name: str) -> int:
        """Position of class ``name`` in :attr:`classes`; KeyError naming the closest classes otherwise."""
        if self.classes is None or name not in self.classes:
            raise KeyError(unknown_name_message("class", name, self.classes or []))
        return self.classes.index(name)

    def sources(self) -> list[str]:
        """The provenance source of every concept, in bank order."""
        return [p.source for p in self.provenance]

    # -- operations returning a new bank ---------------------------------------------------
    def replace(self, **changes: Any) -> ConceptBank:
        """A new bank with the given fields changed (``names``, ``texts``, ``vectors``, ``intercepts``,
        ``provenance``, ``classes``, ``prior``, ``metadata``, ``encoder_fingerprint``), checked as on creation."""
        kw = dict(
            names=self.names, texts=self.texts, vectors=self.vectors, intercepts=self.intercepts,
            provenance=self.provenance, classes=self.classes, prior=self.prior,
            metadata=self.metadata, encoder_fingerprint=self.encoder_fingerprint,
        )
        kw.update(changes)
        return ConceptBank(**kw)

    def subset(self, keep: Iterable[int | str]) -> ConceptBank:
        """A bank with only the given concepts (indices or names), in the given order."""
        idx = [k if isinstance(k, int | np.integer) else self.index(k) for k in keep]
        idx = [int(i) for i in idx]

        def take(a):
            return None if a is None else a[idx]

        return self.replace(
            names=[self.names[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            vectors=take(self.vectors),
            intercepts=take(self.intercepts),
            provenance=[self.provenance[i] for i in idx],
            prior=None if self.prior is None else self.prior[:, idx],
        )

    def dedupe(self) -> ConceptBank:
        """Drop concepts whose normalised text repeats an earlier one (case, spaces, end dots)."""
        seen: set[str] = set()
        keep = []
        for i, t in enumerate(self.texts):
            key = normalize_text(t)
            if key and key not in seen:
                seen.add(key)
                keep.append(i)
        return self.subset(keep)

    def rename(self, mapping: Mapping[str, str]) -> ConceptBank:
        """Rename concepts; texts that equal their old name follow the rename."""
        for old in mapping:
            self.index(old)
        names = [mapping.get(n, n) for n in self.names]
        texts = [mapping.get(n, t) if t == n else t for n, t in zip(self.names, self.texts, strict=True)]
        return self.replace(names=names, texts=texts)

    def with_vectors(
        self, vectors: Any, intercepts: Any | None = None, encoder_fingerprint: str | None = None
    ) -> ConceptBank:
        """The same concepts with new vectors (for example text embeddings of ``texts``)."""
        return self.replace(vectors=vectors, intercepts=intercepts, encoder_fingerprint=encoder_fingerprint)

    def with_prior(self, classes: Sequence[str], prior: Any) -> ConceptBank:
        """A copy with a (K, M) class x concept prior for ``classes``."""
        return self.replace(classes=list(classes), prior=prior)

    def merge(self, other: ConceptBank) -> ConceptBank:
        """Concatenate two banks; names already present in ``self`` are skipped.

        Vectors are kept only when both banks have them from the same encoder. Priors are
        aligned over the union of classes, with 0 (unknown) where a bank says nothing.
        """
        new = [i for i, n in enumerate(other.names) if n not in set(self.names)]
        o = other.subset(new)
        vectors = intercepts = None
        fp = self.encoder_fingerprint
        if self.vectors is not None and o.vectors is not None:
            if self.encoder_fingerprint != o.encoder_fingerprint:
                raise EncoderMismatchError(
                    f"Cannot merge concept vectors from encoder {o.encoder_fingerprint!r} into a bank "
                    f"from {self.encoder_fingerprint!r}; re-embed one bank with the other's encoder."
                )
            vectors = np.concatenate([self.vectors, o.vectors])
            if self.intercepts is not None or o.intercepts is not None:
                intercepts = np.concatenate([
                    self.intercepts if self.intercepts is not None else np.zeros(len(self), np.float32),
                    o.intercepts if o.intercepts is not None else np.zeros(len(o), np.float32),
                ])
        else:
            fp = None
        classes = prior = None
        if self.classes is not None or o.classes is not None:
            classes = list(self.classes or [])
            classes += [c for c in (o.classes or []) if c not in classes]
            prior = np.zeros((len(classes), len(self) + len(o)), np.float32)
            for bank, offset in ((self, 0), (o, len(self))):
                if bank.prior is not None:
                    for k, c in enumerate(bank.classes):
                        prior[classes.index(c), offset : offset + len(bank)] = bank.prior[k]
        return ConceptBank(
            names=self.names + o.names, texts=self.texts + o.texts, vectors=vectors,
            intercepts=intercepts, provenance=self.provenance + o.provenance, classes=classes,
            prior=prior, metadata={**o.metadata, **self.metadata}, encoder_fingerprint=fp,
        )

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (tensors excluded)."""
        return {
            "format": BANK_FORMAT,
            "names": self.names,
            "texts": self.texts,
            "provenance": [asdict(p) for p in self.provenance],
            "classes": self.classes,
            "metadata": self.metadata,
            "encoder_fingerprint": self.encoder_fingerprint,
        }

    def tensors(self) -> dict[str, np.ndarray]:
        """The bank's arrays (vectors, intercepts, prior; those present) as contiguous float32."""
        out = {}
        for key in ("vectors", "intercepts", "prior"):
            val = getattr(self, key)
            if val is not None:
                out[key] = np.ascontiguousarray(val, dtype=np.float32)
        return out

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> ConceptBank:
        """Rebuild a bank from its JSON metadata and :meth:`tensors`; CBMError on another format."""
        if meta.get("format") != BANK_FORMAT:
            raise CBMError(
                f"Not a cbmkit concept bank (format {meta.get('format')!r}, expected {BANK_FORMAT!r})."
            )
        return cls(
            names=meta["names"], texts=meta["texts"],
            vectors=tensors.get("vectors"), intercepts=tensors.get("intercepts"),
            provenance=[Provenance.from_dict(p) for p in meta["provenance"]],
            classes=meta.get("classes"), prior=tensors.get("prior"),
            metadata=meta.get("metadata"), encoder_fingerprint=meta.get("encoder_fingerprint"),
        )

    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``bank.json`` plus ``bank.safetensors`` (atomic writes)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "bank.safetensors") as tmp:
            save_file(self.tensors(), str(tmp))
        atomic_write_json(path / "bank.json", self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ConceptBank:
        """Load a bank saved by :meth:`save`."""
        path = Path(path)
        if not (path / "bank.json").is_file():
            raise CBMError(
                f"No concept bank at {str(path)!r}: expected a folder with bank.json and "
                "bank.safetensors (written by ConceptBank.save or `cbm concepts generate`)."
            )
        meta = read_json(path / "bank.json", "concept bank file")
        st = path / "bank.safetensors"
        try:
            tensors = load_file(str(st)) if st.exists() else {}
        except Exception as e:
            raise CBMError(f"Concept bank tensors {str(st)!r} are corrupt ({e}); regenerate the bank.") from None
        return cls.from_parts(meta, tensors)

    def check_encoder(self, fingerprint: str | None) -> None:
        """Raise when the bank's vectors come from another encoder than ``fingerprint``."""
        if self.vectors is not None and fingerprint and self.encoder_fingerprint not in (None, fingerprint):
            raise EncoderMismatchError(
                f"This concept bank's vectors come from encoder {self.encoder_fingerprint!r}, but the "
                f"embeddings come from {fingerprint!r}. Re-embed the concepts with the same encoder "
                "(`cbm concepts generate ... --encoder NAME --pretrained WEIGHTS`, as given to `cbm embed`)."
            )


def _as_2d_float(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"ConceptBank {what} must be 2-D (n_concepts, dim); got shape {arr.shape}.")
    return arr


# -- matching a bank's classes to the data's, by name ----------------------------------------------
def parse_class_map(spec: str | Path | Mapping[str, str] | None) -> dict[str, str]:
    """``"cat=Cat,dog=Dog"``, a ``.json`` file ``{data class: bank class}`` or a text file of
    ``DATA=BANK`` lines -> ``{data class: bank class}``."""
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    path = Path(str(spec)).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".json":
            data = read_json(path, "class map")
            if not isinstance(data, dict):
                raise ValueError(f"Class map {str(path)!r} must be a JSON object {{data class: bank class}}.")
            return {str(k): str(v) for k, v in data.items()}
        items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        items = [part.strip() for part in str(spec).split(",") if part.strip()]
    out = {}
    for item in items:
        data_cls, sep, bank_cls = item.partition("=")
        if not sep or not data_cls.strip() or not bank_cls.strip():
            raise ValueError(f"Class map entry {item!r} is not DATA_CLASS=BANK_CLASS; write e.g. "
                             "--class-map 'cat=Felis catus,dog=Canis familiaris' or a .json file.")
        out[data_cls.strip()] = bank_cls.strip()
    return out


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:20]) + (" ..." if len(names) > 20 else "")
    return f"({len(names)}): {shown}"


def match_classes(bank: ConceptBank, classes: Sequence[Any],
                  class_map: str | Path | Mapping[str, str] | None = None) -> ConceptBank:
    """The bank with its classes (and prior rows) matched to the data's ``classes`` by name.

    Every data class must be a bank class, after ``class_map`` ({data class: bank class}) renames
    the bank's; the returned bank's ``classes`` are the data's, in the data's order, so a model
    trained on these labels reads the right prior row for each class. Bank classes the data does
    not have are dropped. A bank without classes is returned unchanged.

    Raises
    ------
    ClassMismatchError
        When a data class has no bank class, listing both sides and the way out.
    """
    data = [str(c) for c in classes]
    mapping = parse_class_map(class_map)
    if bank.classes is None:
        return bank
    bad_keys = [k for k in mapping if k not in data]
    bad_vals = [v for v in mapping.values() if v not in bank.classes]
    if bad_keys or bad_vals:
        raise ClassMismatchError(
            "--class-map must map data classes to bank classes (DATA=BANK): "
            + (f"{bad_keys} are not data classes {_listing(data)}. " if bad_keys else "")
            + (f"{bad_vals} are not bank classes {_listing(bank.classes)}." if bad_vals else ""))
    source = [mapping.get(c, c) for c in data]
    missing = [c for c, s in zip(data, source, strict=True) if s not in bank.classes]
    if missing:
        raise ClassMismatchError(
            f"The concept bank's classes do not match the data's by name: data classes {_listing(data)}; "
            f"bank classes {_listing(bank.classes)}; not in the bank: {missing[:10]}. Classes are matched "
            "by name, never by position: rename the folders or labels, make the bank for these classes, "
            "or map them deliberately with --class-map DATA=BANK[,DATA=BANK...] (or a .json file).")
    rows = [bank.classes.index(s) for s in source]
    prior = None if bank.prior is None else bank.prior[rows]
    return bank.replace(classes=data, prior=prior)
