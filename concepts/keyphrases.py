"""Textbook concepts without an LLM: keyphrases from the passages retrieval finds for each class.

KnoBo has an LLM read the retrieved passages and write concept questions; here the passages are
read by a keyphrase extractor instead, so a hospital without an LLM endpoint can still ground a
bank in its own guidelines:

1. retrieve the top passages per class (BM25, or dense with a text encoder), as KnoBo does;
2. candidate phrases are the corpus's 1–3-word n-grams without stop words or class names;
3. each candidate is scored per class by relevance times class specificity: relevance is
   KeyBERT's cosine between the phrase and the class's passages when a text encoder is given
   (Grootendorst, KeyBERT, 2020), else the summed TF-IDF weight of its words in those passages
   (as RAKE sums word scores, so longer specific phrases win); specificity is the
   share of the phrase's mentions that fall in this class's passages;
4. per class, Maximal Marginal Relevance keeps ``per_class`` diverse phrases;
5. the yes/no/unknown prior comes from the passages themselves: "yes" where the class's
   passages contain the phrase, "unknown" where they share only some of its words, "no" where
   they share none. Every concept cites the passages it was found in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cbm.arrays import unit_rows
from cbm.bank import ConceptBank, Provenance, normalize_text
from cbm.concepts.textbook import Passage, load_corpus, make_retriever


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z][a-z-]+", text.lower()))


def _class_words(classes: Sequence[str]) -> set[str]:
    """Words of the class names and their simple singular/plural forms."""
    out: set[str] = set()
    for c in classes:
        for w in _words(c.replace("/", " ")):
            out |= {w, w.rstrip("s"), w + "s"}
    return out


def _candidates(texts: Sequence[str], ngram_range: tuple[int, int],
                banned: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous runs of 1..n content words (no stop word, no class word) and their counts.

    Text is cut at punctuation and at stop words first, so a phrase never spans a clause.
    Returns the vocabulary (V,) and a (len(texts), V) count matrix.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    lo, hi = ngram_range
    rows: list[dict[str, int]] = []
    for text in texts:
        counts: dict[str, int] = {}
        for fragment in re.split(r"[^a-zA-Z\s-]+", text.lower()):
            run: list[str] = []
            for w in [*re.findall(r"[a-z][a-z-]+", fragment), ""]:
                if w and w not in ENGLISH_STOP_WORDS and w not in banned:
                    run.append(w)
                    continue
                for n in range(lo, hi + 1):
                    for i in range(len(run) - n + 1):
                        phrase = " ".join(run[i:i + n])
                        counts[phrase] = counts.get(phrase, 0) + 1
                run = []
        rows.append(counts)
    vocab = np.array(sorted({p for r in rows for p in r}))
    col = {p: j for j, p in enumerate(vocab)}
    out = np.zeros((len(texts), len(vocab)))
    for i, r in enumerate(rows):
        for p, c in r.items():
            out[i, col[p]] = c
    return vocab, out


def _mmr(candidates: np.ndarray, relevance: np.ndarray, sim: np.ndarray, k: int,
         diversity: float) -> list[int]:
    """Maximal Marginal Relevance over ``candidates`` (indices), returning up to ``k`` of them."""
    chosen: list[int] = []
    pool = [int(c) for c in candidates]
    while pool and len(chosen) < k:
        if chosen:
            redundancy = sim[np.ix_(pool, chosen)].max(1)
        else:
            redundancy = np.zeros(len(pool))
        gain = (1 - diversity) * relevance[pool] - diversity * redundancy
        best = pool[int(np.argmax(gain))]
        chosen.append(best)
        pool.remove(best)
    return chosen


def extract_textbook_concepts(
    classes: Sequence[str],
    corpus: str | Path | Sequence[Passage],
    *,
    retriever: str = "bm25",
    encoder: Any | None = None,
    top_k: int = 8,
    per_class: int = 8,
    ngram_range: tuple[int, int] = (1, 3),
    diversity: float = 0.5,
    min_specificity: float = 0.3,
    min_passage_weight: float = 0.5,
) -> ConceptBank:
    """KnoBo-style concepts from a local corpus with no LLM: retrieve, extract keyphrases, cite.

    Parameters
    ----------
    classes : class names, also the retrieval queries.
    corpus : a folder (see :func:`cbm.concepts.textbook.load_corpus`) or passages.
    retriever : "bm25" or "dense" (needs ``encoder``).
    encoder : optional text encoder (``encode_text``); turns on KeyBERT relevance and
        embedding-based diversity. Without it, scores are lexical (TF-IDF).
    top_k : passages retrieved per class.
    per_class : phrases kept per class (fewer if the passages hold fewer specific phrases).
    diversity : MMR trade-off, 0 = relevance only, 1 = diversity only.
    min_specificity : a phrase must have at least this share of its (retrieval-weighted)
        mentions in the class's passages to be proposed for that class.
    min_passage_weight : passages scoring below this fraction of the class's best passage are
        not read for that class.

    Returns
    -------
    ConceptBank
        With the yes/no/unknown ``prior`` over ``classes`` and, per concept, provenance ``detail``
        holding ``classes`` (proposed for), ``citations`` ({doc, passage_id, text, score, classes}:
        each passage once, with the classes it was retrieved for) and per-class ``scores``.
    """
    classes = list(classes)
    if not classes:
        raise ValueError("extract_textbook_concepts needs at least one class name.")
    passages = load_corpus(corpus) if isinstance(corpus, str | Path) else list(corpus)
    index = make_retriever(passages, retriever, encoder)
    hits = {c: index.search(c, top_k) for c in classes}
    if not any(hits.values()):
        raise ValueError(f"Retrieval found no passage for any of the classes {classes!r}; check "
                         "that the corpus mentions them by these names.")

    banned = _class_words(classes)
    texts = sorted({p.text for c in classes for p, _ in hits[c]})
    row = {t: i for i, t in enumerate(texts)}
    vocab, per_passage = _candidates(texts, ngram_range, banned)         # (P, V) counts
    if len(vocab) == 0:
        raise ValueError("The retrieved passages hold no candidate phrase besides class names.")
    weights = np.zeros((len(classes), len(texts)))                       # retrieval weight per class
    for k, c in enumerate(classes):
        top = max((s for _, s in hits[c]), default=0.0)
        for p, s in hits[c]:
            weights[k, row[p.text]] = max(weights[k, row[p.text]], s / top if top > 0 else 1.0)
    weights[weights < min_passage_weight] = 0.0
    counts = weights @ per_passage                                        # (K, V)
    docs = [" ".join(t for t, w in zip(texts, weights[k], strict=True) if w > 0)
            for k in range(len(classes))]
    specificity = counts / np.maximum(counts.sum(0, keepdims=True), 1e-12)   # share per class
    if encoder is not None:
        phrase_emb = unit_rows(encoder.encode_text(list(vocab)), np.float64)
        doc_emb = unit_rows(encoder.encode_text([d or c for d, c in zip(docs, classes, strict=True)]), np.float64)
        relevance = doc_emb @ phrase_emb.T                                      # (K, V) KeyBERT
        sim = phrase_emb @ phrase_emb.T
    else:
        idf = np.log((1 + len(classes)) / (1 + (counts > 0).sum(0))) + 1
        tfidf = np.log1p(counts) * idf
        # RAKE-like: a phrase scores the sum of its words' TF-IDF, so "long legs" beats "long"
        word_col = {v: j for j, v in enumerate(vocab) if " " not in v}
        members = np.zeros((len(vocab), len(vocab)))
        for j, v in enumerate(vocab):
            for w in v.split():
                members[j, word_col[w]] = 1.0
        tfidf = (tfidf @ members.T) * (counts > 0)
        relevance = tfidf / np.maximum(tfidf.max(1, keepdims=True), 1e-12)
        tokens = [set(v.split()) for v in vocab]
        sim = np.array([[len(a & b) / len(a | b) for b in tokens] for a in tokens])
    score = np.clip(relevance, 0, None) * specificity

    chosen: dict[int, list[str]] = {}
    for k, cls in enumerate(classes):
        cand = np.flatnonzero((counts[k] > 0) & (specificity[k] >= min_specificity))
        for j in _mmr(cand, score[k], sim, per_class, diversity):
            chosen.setdefault(j, []).append(cls)
    if not chosen:
        raise ValueError("No class-specific phrase was found; lower min_specificity or add text "
                         "about each class to the corpus.")

    order = sorted(chosen, key=lambda j: (classes.index(chosen[j][0]), -score[:, j].max()))
    names, prov, prior_cols, seen = [], [], [], set()
    for j in order:
        phrase = str(vocab[j])
        if normalize_text(phrase) in seen:
            continue
        seen.add(normalize_text(phrase))
        words = set(phrase.split())
        col = []
        for k in range(len(classes)):
            present = _words(docs[k])
            col.append(1.0 if counts[k, j] > 0 else 0.0 if words & present else -1.0)
        cites: dict[str, dict[str, Any]] = {}
        for c in classes:
            for p, s in hits[c]:
                if re.search(rf"\b{re.escape(phrase)}\b", p.text.lower()):
                    cite = cites.setdefault(p.passage_id, {**asdict(p), "score": s, "classes": []})
                    cite["classes"].append(c)
        names.append(phrase)
        prior_cols.append(col)
        prov.append(Provenance("textbook", {
            "classes": chosen[j], "citations": list(cites.values()), "extractor": "keyphrase",
            "relevance": "keybert" if encoder is not None else "tfidf", "retriever": retriever,
            "scores": {c: round(float(score[k, j]), 4) for k, c in enumerate(classes)},
        }, model=getattr(encoder, "fingerprint", None)))
    prior = np.asarray(prior_cols, np.float32).T
    return ConceptBank(names, names, provenance=prov, classes=classes, prior=prior,
                       metadata={"generator": "textbook-keyphrase", "retriever": retriever,
                                 "n_passages": len(passages), "top_k": top_k})


def concept_overlap(found: Sequence[str], reference: Sequence[str], encoder: Any | None = None,
                    threshold: float = 0.6) -> dict[str, Any]:
    """How many ``reference`` concepts some ``found`` concept matches.

    A match is a shared content word (lexical) or, with ``encoder``, a cosine similarity of at
    least ``threshold``. Returns ``recall`` (matched share of the reference), ``precision``
    (share of found concepts that match a reference concept) and the matched pairs.
    """
    found, reference = list(found), list(reference)
    if not found or not reference:
        return {"recall": 0.0, "precision": 0.0, "pairs": []}
    if encoder is not None:
        sim = unit_rows(encoder.encode_text(found), np.float64) @ unit_rows(encoder.encode_text(reference), np.float64).T
        match = sim >= threshold
    else:
        fw = [_words(f) for f in found]
        rw = [_words(r) for r in reference]
        sim = np.array([[len(a & b) / max(len(a | b), 1) for b in rw] for a in fw])
        match = sim > 0
    pairs = [(found[i], reference[j], round(float(sim[i, j]), 3))
             for j in range(len(reference)) for i in [int(np.argmax(sim[:, j]))] if match[i, j]]
    return {"recall": float(match.any(0).mean()), "precision": float(match.any(1).mean()),
            "pairs": pairs}
