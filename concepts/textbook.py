"""Concepts grounded in a local corpus (KnoBo): retrieve passages per class, let an LLM write
yes/no concept questions from them, and ask it per class and question for a yes/no/unknown prior.

The corpus is a folder of ``.txt``, ``.md``, ``.jsonl`` (one ``{"text": ...}`` per line) and,
with pypdf, ``.pdf`` files, split into passages. Retrieval is BM25 (``bm25s``) by default, or
dense with any text encoder (an object with ``encode_text``). Every concept keeps its citations.

Reference: Yang et al., "A Textbook Remedy for Domain Shifts: Knowledge Priors for Medical
Image Analysis" (KnoBo), NeurIPS 2024.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import read_json
from cbm.arrays import unit_rows
from cbm.bank import ConceptBank, Provenance, normalize_text
from cbm.concepts.llm import fill, load_prompt, parse_concept_list
from cbm.exceptions import DataError

CORPUS_SUFFIXES = (".txt", ".md", ".jsonl", ".pdf")
ANSWER_VALUE = {"yes": 1.0, "no": -1.0, "unknown": 0.0}


@dataclass(frozen=True)
class Passage:
    """One retrievable chunk: source document, id within the corpus, text."""

    doc: str
    passage_id: str
    text: str


def _chunks(text: str, max_words: int) -> list[str]:
    """Paragraphs merged up to ``max_words``; long paragraphs split by words."""
    out, cur = [], []
    for para in re.split(r"\n\s*\n", text):
        words = para.split()
        while len(words) > max_words:
            if cur:
                out.append(" ".join(cur))
                cur = []
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if cur and len(cur) + len(words) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur += words
    if cur:
        out.append(" ".join(cur))
    return out


def load_corpus(folder: str | Path, max_words: int = 120) -> list[Passage]:
    """Read every supported file under ``folder`` (recursively) into passages."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Corpus folder {str(folder)!r} does not exist; pass a folder of "
                                f"{', '.join(CORPUS_SUFFIXES)} files.")
    passages: list[Passage] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in CORPUS_SUFFIXES):
        doc = str(path.relative_to(folder))
        for i, text in enumerate(_read_document(path, max_words)):
            passages.append(Passage(doc, f"{doc}#{i}", text))
    if not passages:
        raise DataError(f"No text found in corpus folder {str(folder)!r}; it needs "
                        f"{', '.join(CORPUS_SUFFIXES)} files with text.")
    return passages


def _read_document(path: Path, max_words: int) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{str(path)!r} line {n} is not JSON; each line of a .jsonl corpus "
                                'file must be an object like {"text": "..."}.') from None
            text = rec.get("text") or rec.get("content") if isinstance(rec, dict) else None
            if text:
                out += _chunks(str(text), max_words)
        return out
    if suffix == ".pdf":
        try:
            from pypdf import PdfReader
        except ImportError:  # pragma: no cover - pypdf is a dependency
            raise DataError(f"Reading {str(path)!r} needs pypdf: pip install pypdf.") from None
        text = "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
        return _chunks(text, max_words)
    return _chunks(path.read_text(errors="replace"), max_words)


class BM25Retriever:
    """Lexical retrieval over passages with ``bm25s`` (English stop words removed)."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        import bm25s

        self.passages = list(passages)
        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize([p.text for p in self.passages], stopwords="en",
                                         show_progress=False), show_progress=False)

    def search(self, query: str, k: int = 5) -> list[tuple[Passage, float]]:
        """Top ``k`` passages with their scores (passages with score 0 are dropped)."""
        k = min(k, len(self.passages))
        q = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        idx, scores = self._index.retrieve(q, k=k, show_progress=False)
        return [(self.passages[int(i)], float(s)) for i, s in zip(idx[0], scores[0], strict=True)
                if s > 0]


class DenseRetriever:
    """Cosine retrieval with any text encoder (``encode_text(list[str]) -> (n, d)``)."""

    def __init__(self, passages: Sequence[Passage], encoder: Any) -> None:
        self.passages = list(passages)
        self.encoder = encoder
        self._emb = unit_rows(encoder.encode_text([p.text for p in self.passages]), np.float64)

    def search(self, query: str, k: int = 5) -> list[tuple[Passage, float]]:
        """The ``k`` passages closest to ``query`` by cosine similarity, with their scores, best first."""
        q = unit_rows(self.encoder.encode_text([query]), np.float64)[0]
        scores = self._emb @ q
        top = np.argsort(-scores, kind="stable")[: min(k, len(self.passages))]
        return [(self.passages[int(i)], float(scores[i])) for i in top]


def make_retriever(passages: Sequence[Passage], retriever: str = "bm25",
                   encoder: Any | None = None) -> BM25Retriever | DenseRetriever:
    """A retriever over ``passages``: "bm25" (lexical) or "dense" (needs a text ``encoder``)."""
    if retriever == "bm25":
        return BM25Retriever(passages)
    if retriever == "dense":
        if encoder is None or not hasattr(encoder, "encode_text"):
            raise ValueError("retriever='dense' needs encoder= with an encode_text method, e.g. "
                             "cbm.encoders.create_encoder('minilm').")
        return DenseRetriever(passages, encoder)
    raise ValueError(f"retriever must be 'bm25' or 'dense'; got {retriever!r}.")


def generate_textbook_concepts(
    classes: Sequence[str],
    corpus: str | Path | Sequence[Passage],
    client: Any,
    retriever: str = "bm25",
    encoder: Any | None = None,
    top_k: int = 5,
    answer: bool = True,
    question_template: str = "knobo_questions",
    answer_template: str = "knobo_answer",
) -> ConceptBank:
    """KnoBo concept generation: retrieve per class, write grounded questions, answer a prior.

    Returns a bank whose provenance ``detail["citations"]`` lists ``{doc, passage_id, text}``
    for every concept, and (with ``answer=True``) ``prior`` in {+1, -1, 0} per class/concept.
    """
    passages = load_corpus(corpus) if isinstance(corpus, str | Path) else list(corpus)
    index = make_retriever(passages, retriever, encoder)
    template = load_prompt(question_template)
    hits = {c: index.search(c, top_k) for c in classes}
    prompts = [fill(template, class_name=c, passages="\n\n".join(
        f"[{p.passage_id}] {p.text}" for p, _ in hits[c])) for c in classes]
    answers = client.chat_many(prompts)
    records: dict[str, dict[str, Any]] = {}
    for cls, ans in zip(classes, answers, strict=True):
        cites = [{**asdict(p), "score": s} for p, s in hits[cls]]
        for q in parse_concept_list(ans.text):
            rec = records.setdefault(normalize_text(q), {"text": q, "classes": [], "citations": [],
                                                         "raw_answers": []})
            rec["classes"].append(cls)
            rec["citations"] += [c for c in cites if c not in rec["citations"]]
            rec["raw_answers"].append({"class": cls, "raw_answer": ans.text})
    texts = [r["text"] for r in records.values()]
    prov = [Provenance("textbook", {"classes": r["classes"], "citations": r["citations"],
                                    "raw_answers": r["raw_answers"], "retriever": retriever},
                       model=getattr(client, "model", None)) for r in records.values()]
    bank = ConceptBank(texts, texts, provenance=prov,
                       metadata={"generator": "textbook", "retriever": retriever,
                                 "n_passages": len(passages)})
    return answer_prior(bank, classes, client, answer_template) if answer else bank


def parse_answer(text: str) -> str:
    """``"yes"``, ``"no"`` or ``"unknown"`` from a free-text answer (first such word wins)."""
    m = re.search(r"\b(yes|no|unknown)\b", (text or "").lower())
    return m.group(1) if m else "unknown"


def answer_prior(bank: ConceptBank, classes: Sequence[str], client: Any,
                 template: str = "knobo_answer") -> ConceptBank:
    """Ask per class and concept yes/no/unknown; return the bank with prior in {+1, -1, 0}."""
    tmpl = load_prompt(template)
    jobs = [(k, j) for k in range(len(classes)) for j in range(len(bank))]
    answers = client.chat_many([fill(tmpl, class_name=classes[k], concept=bank.texts[j])
                                for k, j in jobs], max_tokens=8)
    prior = np.zeros((len(classes), len(bank)), np.float32)
    for (k, j), ans in zip(jobs, answers, strict=True):
        prior[k, j] = ANSWER_VALUE[parse_answer(ans.text)]
    return bank.with_prior(classes, prior)


def load_knobo_answers(path: str | Path) -> ConceptBank:
    """Import KnoBo's ``*_class2concept2answer.json`` (class -> question -> yes/no/unknown)."""
    data = read_json(path, "KnoBo class2concept2answer file")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{str(path)!r} must map class -> {{question: 'yes'|'no'|'unknown'}}.")
    classes = list(data)
    questions = list(dict.fromkeys(q for v in data.values() for q in v))
    prior = np.zeros((len(classes), len(questions)), np.float32)
    col = {q: j for j, q in enumerate(questions)}
    for k, c in enumerate(classes):
        for q, a in data[c].items():
            a = str(a).strip().lower()
            if a not in ANSWER_VALUE:
                raise DataError(f"{str(path)!r}: class {c!r}, question {q!r} has answer {a!r}; "
                                "expected 'yes', 'no' or 'unknown'.")
            prior[k, col[q]] = ANSWER_VALUE[a]
    prov = [Provenance("file", {"path": str(path), "format": "knobo-class2concept2answer"})
            for _ in questions]
    return ConceptBank(questions, questions, provenance=prov, classes=classes, prior=prior,
                       metadata={"generator": "file", "imported_from": str(path)})
