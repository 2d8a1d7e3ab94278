"""Label-free CBM concept filters, with the published defaults, and a log of every removal.

Steps, in the paper's order (each one is skipped when its threshold is ``None``):

1. ``length``: concepts longer than ``max_length`` characters (30).
2. ``class_name``: a concept that is a class name ("a cat", "the cat").
3. ``class_similarity``: cosine similarity to any class name >= ``class_similarity`` (0.85).
4. ``duplicate``: near-duplicate pairs with similarity >= ``duplicate_similarity`` (0.9); of a
   pair, the concept with the smaller summed similarity to all concepts goes (the more general
   one stays), as the released code does.
5. ``never_fires``: given image embeddings, the mean of a concept's top-5 activations (cosine
   to images) below ``activation_cutoff`` (0.25).

Similarities use a text encoder passed in (``encode_text``), or precomputed embeddings.
Reference: Oikarinen et al., "Label-Free Concept Bottleneck Models", ICLR 2023.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cbm.arrays import unit_rows
from cbm.bank import ConceptBank, normalize_text
from cbm.concepts.text import encode_texts

_ARTICLES = ("", "a ", "an ", "the ")


def top_activation(concepts: Any, images: Any, k: int = 5) -> np.ndarray:
    """Mean of each concept's ``k`` highest cosine activations over images, shape (M,).

    Uses ``cbm.kernels.concept_scores`` (streamed, no N x M matrix) with concepts as rows.
    """
    c = torch.as_tensor(np.asarray(concepts, np.float32))
    x = torch.as_tensor(np.asarray(images, np.float32))
    k = min(k, x.shape[0])
    try:
        from cbm.kernels import concept_scores

        values, _ = concept_scores(c, x, topk=k)
    except ImportError:  # kernels not importable: same numbers in plain torch
        sims = torch.nn.functional.normalize(c, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
        values = sims.topk(k, dim=1).values
    return values.float().mean(1).numpy()


def filter_concepts(
    bank: ConceptBank,
    classes: Sequence[str] | None = None,
    encoder: Any | None = None,
    image_embeddings: Any | None = None,
    *,
    max_length: int | None = 30,
    class_similarity: float | None = 0.85,
    duplicate_similarity: float | None = 0.9,
    activation_cutoff: float | None = 0.25,
    top_k: int = 5,
    text_embeddings: Any | None = None,
    class_embeddings: Any | None = None,
) -> tuple[ConceptBank, list[dict[str, Any]]]:
    """Apply the Label-free CBM filters; return the kept bank and the removal log.

    Parameters
    ----------
    bank : ConceptBank
    classes : sequence of str, optional
        Class names (default ``bank.classes``); needed for the class steps.
    encoder : object, optional
        Text encoder for similarities (``encode_text``); or pass ``text_embeddings`` (M, d)
        and ``class_embeddings`` (K, d).
    image_embeddings : array (N, d), optional
        Enables the ``never_fires`` step; concept vectors are ``bank.vectors`` or, failing that,
        the encoder's text embeddings (they must share the image space).

    Returns
    -------
    bank : ConceptBank
        Kept concepts; ``metadata["filter_log"]`` holds the log and the settings.
    log : list of dict
        ``{"concept", "step", "reason", "value"}`` per removed concept.
    """
    classes = list(classes if classes is not None else (bank.classes or []))
    keep = np.ones(len(bank), bool)
    log: list[dict[str, Any]] = []

    def drop(j: int, step: str, reason: str, value: Any = None) -> None:
        keep[j] = False
        log.append({"concept": bank.names[j], "step": step, "reason": reason, "value": value})

    if max_length is not None:
        for j, t in enumerate(bank.texts):
            if len(t.strip()) > max_length:
                drop(j, "length", f"longer than {max_length} characters", len(t.strip()))
    if classes:
        names = {normalize_text(a + c) for c in classes for a in _ARTICLES}
        for j in np.flatnonzero(keep):
            if normalize_text(bank.texts[j]) in names:
                drop(int(j), "class_name", "is a class name")
    need_sim = (class_similarity is not None and classes) or duplicate_similarity is not None
    emb = None
    if need_sim and (encoder is not None or text_embeddings is not None):
        emb = unit_rows(text_embeddings if text_embeddings is not None
                        else encode_texts(encoder, bank.texts), np.float32)
        if class_similarity is not None and classes:
            cemb = unit_rows(class_embeddings if class_embeddings is not None
                             else encode_texts(encoder, classes), np.float32)
            sim = emb @ cemb.T
            for j in np.flatnonzero(keep):
                k = int(sim[j].argmax())
                if sim[j, k] >= class_similarity:
                    drop(int(j), "class_similarity",
                         f"similarity {sim[j, k]:.3f} >= {class_similarity} to class {classes[k]!r}",
                         float(sim[j, k]))
        if duplicate_similarity is not None:
            _drop_duplicates(emb, keep, duplicate_similarity, bank.names, drop)
    if image_embeddings is not None and activation_cutoff is not None:
        vecs = bank.vectors if bank.vectors is not None else (
            encode_texts(encoder, bank.texts) if encoder is not None else None)
        if vecs is None:
            raise ValueError("The never-fires filter needs concept vectors in the image space: a bank "
                             "with vectors, or encoder= (the text tower of the image encoder).")
        idx = np.flatnonzero(keep)
        top = top_activation(np.asarray(vecs)[idx], image_embeddings, top_k)
        for j, v in zip(idx, top, strict=True):
            if v < activation_cutoff:
                drop(int(j), "never_fires",
                     f"mean top-{top_k} activation {v:.3f} < {activation_cutoff}", float(v))
    out = bank.subset(np.flatnonzero(keep).tolist())
    out.metadata["filter_log"] = {
        "settings": {"max_length": max_length, "class_similarity": class_similarity,
                     "duplicate_similarity": duplicate_similarity,
                     "activation_cutoff": activation_cutoff, "top_k": top_k},
        "removed": log, "n_before": len(bank), "n_after": len(out)}
    return out, log


def _drop_duplicates(emb: np.ndarray, keep: np.ndarray, cutoff: float, names: list[str], drop
                     ) -> None:
    """Released-code pair scan: pairs (i < j) in row order; the less general one of each goes."""
    idx = np.flatnonzero(keep)
    sim = emb[idx] @ emb[idx].T
    generality = sim.sum(1)
    np.fill_diagonal(sim, -np.inf)
    alive = np.ones(len(idx), bool)
    close = sim >= cutoff
    for a in np.flatnonzero(close.any(1)):
        for b in np.flatnonzero(close[a, a + 1 :]) + a + 1:
            if not alive[a]:
                break
            if alive[b]:
                loser, winner = (a, b) if generality[a] < generality[b] else (b, a)
                alive[loser] = False
                drop(int(idx[loser]), "duplicate",
                     f"similarity {sim[a, b]:.3f} >= {cutoff} to {names[idx[winner]]!r} (kept: "
                     "more general)", float(sim[a, b]))
