"""The text-scored methods (LaBo, Label-free CBM, Sparse-CBM, Concept Matrix Search) on the demo's
real images, through the offline text-aligned stand-in for CLIP (:mod:`cbm.encoders.aligned`).

The stand-in is fitted on the training split only, from captions made of class names and the
garment bank's "yes" concepts; models then see the projected embeddings (384-d, MiniLM space) and
concept vectors embedded by MiniLM. Its limits are the stand-in's: it knows what its captions said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TEXT_METHODS = ("labo", "lf-cbm", "sparse-cbm", "cms")
TEXTBOOK_DIR = Path(__file__).parent / "textbook"   # the demo's offline garment "textbook"
TEMPLATE = "a photo of a {cls}"


def fit_standin(X_train: np.ndarray, y_train: Sequence[str], bank: Any, classes: Sequence[str],
                image_encoder: Mapping[str, Any], image_fingerprint: str, seed: int = 0,
                text_encoder: Any | None = None):
    """The stand-in's alignment, fitted on training images and their classes' captions."""
    from cbm.encoders import create_encoder
    from cbm.encoders.aligned import class_captions, fit_text_alignment

    text_encoder = text_encoder or create_encoder("minilm")
    captions = class_captions(classes, bank, template=TEMPLATE)
    return fit_text_alignment(X_train, [captions[c] for c in y_train], text_encoder,
                              image_encoder=image_encoder, image_fingerprint=image_fingerprint,
                              random_state=seed)


def text_method_models(alignment: Any, X_train: np.ndarray, y_train: Sequence[str], bank: Any,
                       classes: Sequence[str], seed: int = 0, text_encoder: Any | None = None,
                       methods: Sequence[str] = TEXT_METHODS) -> dict[str, Any]:
    """Each text-scored method fitted on the projected training embeddings; name -> model."""
    from cbm.concepts import embed_bank
    from cbm.encoders import create_encoder
    from cbm.models import create_model

    text_encoder = text_encoder or create_encoder("minilm")
    concepts = embed_bank(bank, text_encoder)
    concepts = concepts.with_vectors(concepts.vectors, encoder_fingerprint=alignment.fingerprint)
    Z = alignment.project(X_train)
    names = [str(c) for c in np.unique(y_train)]
    class_text = dict(zip(names, text_encoder.encode_text([TEMPLATE.format(cls=c) for c in names]),
                          strict=True))  # CMS matches class embeddings by name
    out = {}
    for method in methods:
        extra = {"class_embeddings": class_text} if method == "cms" else {}
        model = create_model(method, concepts=concepts, random_state=seed)
        out[method] = model.fit(Z, np.asarray(y_train), **extra)
    return out


LABELS = {"labo": "LaBo (stand-in text)", "lf-cbm": "Label-free CBM (stand-in text)",
          "sparse-cbm": "Sparse-CBM (stand-in text)", "cms": "Concept Matrix Search (stand-in)"}
