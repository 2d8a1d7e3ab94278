"""Text-derived concept vectors: embed concept texts with the text tower of a multimodal encoder.

Any object with ``encode_text(list[str]) -> (n, d)`` and a ``fingerprint`` works (a
``cbm.encoders`` CLIP model, or a fake in tests). The bank records the fingerprint, so applying it
to embeddings from another encoder fails clearly (:meth:`ConceptBank.check_encoder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cbm.bank import ConceptBank, Provenance


def encoder_fingerprint(encoder: Any) -> str | None:
    """The encoder's fingerprint, whether it is an attribute, a property or a method."""
    fp = getattr(encoder, "fingerprint", None)
    return fp() if callable(fp) else fp


def encode_texts(encoder: Any, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """``encoder.encode_text`` in batches, as a float32 numpy array (n, d)."""
    if not hasattr(encoder, "encode_text"):
        raise TypeError(f"{type(encoder).__name__} has no encode_text method; pass a text or "
                        "multimodal encoder, e.g. cbm.encoders.create_encoder('minilm').")
    parts = []
    for i in range(0, len(texts), batch_size):
        out = encoder.encode_text(list(texts[i : i + batch_size]))
        parts.append(out.detach().cpu().float().numpy() if hasattr(out, "detach") else np.asarray(out))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def embed_bank(bank: ConceptBank, encoder: Any, template: str = "{}") -> ConceptBank:
    """The same bank with vectors = text embeddings of its texts (``template`` e.g. "a photo of {}").
    """
    vecs = encode_texts(encoder, [template.format(t) for t in bank.texts])
    out = bank.with_vectors(vecs, None, encoder_fingerprint(encoder))
    out.metadata["text_template"] = template
    return out


def text_concepts(texts: Sequence[str], encoder: Any, names: Sequence[str] | None = None,
                  template: str = "{}") -> ConceptBank:
    """A bank of text concepts with vectors from ``encoder``'s text tower.

    Parameters
    ----------
    texts : sequence of str
        Concept descriptions ("striped fur").
    encoder : object
        ``encode_text`` + ``fingerprint``.
    template : str
        Prompt wrapped around each text before encoding, e.g. ``"a photo of {}"``.
    """
    texts = [str(t) for t in texts]
    fp = encoder_fingerprint(encoder)
    prov = [Provenance("text", {"template": template, "encoder": fp}) for _ in texts]
    bank = ConceptBank(names or texts, texts, provenance=prov, metadata={"generator": "text"})
    return embed_bank(bank, encoder, template)
