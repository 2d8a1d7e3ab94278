"""The one registry of concept sources: where a bank's concepts come from and what each source needs.

``cbm concepts generate --source`` lists and dispatches from here, as ``cbm train --method`` does from
:func:`cbm.models.list_methods`::

    from cbm.concepts import generate_concepts, list_sources

    list_sources()   # ['llm', 'textbook', 'cav', 'text', 'labo', 'file']
    bank = generate_concepts("text", input="concepts.txt", encoder=encoder)

A source is a :class:`ConceptSource`: a name, one line saying what it is, the inputs it cannot do
without, and the function that builds the bank from a :class:`SourceRequest`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from cbm.bank import ConceptBank
from cbm.exceptions import DataError, unknown_name_message


@dataclass(frozen=True)
class SourceRequest:
    """What a concept source is given; each source reads the fields it needs."""

    classes: Sequence[str] | None = None
    input: Path | None = None  # a concept file, a concept list, a corpus folder, an .npz or an image-folder root
    encoder: Any = None  # the encoder the images were embedded with (text towers, CAVs, dense retrieval)
    client: Any = None  # an LLM client (cbm.concepts.LLMClient)
    family: str | Sequence[str] = "labo"  # llm: prompt family or template names
    top_k: int = 5  # textbook: passages per class
    template: str = "{}"  # text, labo: prompt around each concept
    cav_method: str = "svm"  # cav: "svm", "linear_svm" or "mean_diff"

    def __post_init__(self) -> None:
        if self.input is not None:
            object.__setattr__(self, "input", Path(self.input))


@dataclass(frozen=True)
class ConceptSource:
    """One way to make a concept bank."""

    name: str
    summary: str
    needs: tuple[str, ...]  # SourceRequest fields that must be given
    build: Callable[[SourceRequest], ConceptBank]
    uses: tuple[str, ...] = ()  # fields it reads when given (textbook: an LLM client, else keyphrases)

    def reads(self, field: str) -> bool:
        """Whether this source reads ``field`` of a :class:`SourceRequest` (needed or used when given)."""
        return field in self.needs or field in self.uses

    def missing(self, request: SourceRequest) -> list[str]:
        """The fields this source needs that ``request`` leaves empty."""
        return [n for n in self.needs if not getattr(request, n)]


def _llm(req: SourceRequest) -> ConceptBank:
    from cbm.concepts.llm import generate_llm_concepts

    family = req.family if isinstance(req.family, str) and req.family in ("labo", "lfcbm") else (
        req.family.split(",") if isinstance(req.family, str) else list(req.family))
    return generate_llm_concepts(list(req.classes), req.client, family=family)


def _textbook(req: SourceRequest) -> ConceptBank:
    retriever = "dense" if req.encoder is not None else "bm25"
    if req.client is None:  # no LLM: cited keyphrases of the retrieved passages
        from cbm.concepts.keyphrases import extract_textbook_concepts

        return extract_textbook_concepts(list(req.classes), req.input, encoder=req.encoder,
                                         retriever=retriever, top_k=req.top_k)
    from cbm.concepts.textbook import generate_textbook_concepts

    return generate_textbook_concepts(list(req.classes), req.input, req.client, retriever=retriever,
                                      encoder=req.encoder, top_k=req.top_k)


def _cav(req: SourceRequest) -> ConceptBank:
    from cbm.concepts.cav import cavs_from_folders, fit_cavs

    if req.input.suffix == ".npz":
        data = np.load(req.input)
        negatives = [k for k in data.files if k.startswith("neg")]
        if not negatives:
            raise DataError(f"{str(req.input)!r} needs a 'negative' array beside one array per concept "
                            "(that concept's positive embeddings).")
        positives = {k: data[k] for k in data.files if not k.startswith("neg")}
        return fit_cavs(positives, data[negatives[0]], method=req.cav_method)
    if req.encoder is None:
        raise ValueError(f"CAVs from the image folders under {str(req.input)!r} need the encoder that "
                         "embedded the images.")
    return cavs_from_folders(req.input, req.encoder, method=req.cav_method)


def _text(req: SourceRequest) -> ConceptBank:
    from cbm.concepts.files import read_lines
    from cbm.concepts.text import text_concepts

    if req.input.suffix.lower() in (".json", ".jsonl", ".csv"):
        raise ValueError(f"The text source reads a plain concept list (.txt, one per line); {str(req.input)!r} "
                         f"is {req.input.suffix} data. For a {{class: [concepts]}} file use the labo source "
                         "(--source labo; it keeps the class prior); for other files the file source (--source file).")
    return _with_encoder(text_concepts(read_lines(req.input), req.encoder, template=req.template), req.encoder)


def _labo(req: SourceRequest) -> ConceptBank:
    from cbm.concepts.files import load_concepts

    bank = load_concepts(req.input)
    if bank.classes is None or bank.prior is None:
        raise ValueError(f"The labo source needs a class-to-concepts file ({{class: [concepts]}} .json, or a "
                         f".csv with a class column); {str(req.input)!r} names no classes.")
    return _embed(bank, req)


def _file(req: SourceRequest) -> ConceptBank:
    from cbm.concepts.files import load_concepts

    return load_concepts(req.input)


def _embed(bank: ConceptBank, req: SourceRequest) -> ConceptBank:
    from cbm.concepts.text import embed_bank

    return _with_encoder(embed_bank(bank, req.encoder, template=req.template), req.encoder)


def _with_encoder(bank: ConceptBank, encoder: Any) -> ConceptBank:
    bank.metadata["encoder"] = getattr(encoder, "spec", None)
    return bank


_SOURCES: dict[str, ConceptSource] = {s.name: s for s in (
    ConceptSource("llm", "LLM descriptions per class (LaBo, Label-free CBM)", ("client", "classes"), _llm),
    ConceptSource("textbook", "questions grounded in a local corpus (KnoBo); without an LLM, cited keyphrases",
                  ("classes", "input"), _textbook, uses=("client", "encoder")),
    ConceptSource("cav", "concept activation vectors from example embeddings (.npz) or image folders (PCBM)",
                  ("input",), _cav),
    ConceptSource("text", "a plain concept list embedded by the encoder's text tower", ("input", "encoder"), _text),
    ConceptSource("labo", "a {class: [concepts]} file embedded by the encoder's text tower, class prior kept",
                  ("input", "encoder"), _labo),
    ConceptSource("file", "a concept file as saved (.json, .csv, .txt)", ("input",), _file),
)}

#: sources whose banks have no vectors of their own: with an encoder, they are embedded by its text tower
_TEXT_ONLY = ("llm", "file")


def list_sources() -> list[str]:
    """The names of the concept sources, for ``generate_concepts`` and ``cbm concepts generate --source``."""
    return list(_SOURCES)


def get_source(name: str) -> ConceptSource:
    """The :class:`ConceptSource` called ``name``; a clear error listing the others otherwise."""
    if name not in _SOURCES:
        raise ValueError(unknown_name_message("concept source", str(name), _SOURCES))
    return _SOURCES[name]


def generate_concepts(source: str, **request: Any) -> ConceptBank:
    """A concept bank from ``source`` (see :func:`list_sources`) given :class:`SourceRequest` fields.

    With an ``encoder``, banks of text only (``llm``, ``file``) are embedded by its text tower, so
    they can score images embedded by the same encoder.
    """
    known = {f.name for f in fields(SourceRequest)}
    unknown = sorted(set(request) - known)
    if unknown:
        raise TypeError(f"generate_concepts got unknown field(s) {unknown}; known: {sorted(known)}")
    found, req = get_source(source), SourceRequest(**request)
    missing = found.missing(req)
    if missing:
        raise ValueError(f"The {source} concept source needs " + ", ".join(missing) + ".")
    bank = found.build(req)
    if source in _TEXT_ONLY and req.encoder is not None and bank.vectors is None:
        bank = _embed(bank, req)
    return bank


__all__ = ["ConceptSource", "SourceRequest", "generate_concepts", "get_source", "list_sources"]
