"""Rebuilding the image encoder a cache or a model recorded, so a new image embeds exactly as in training.

``cbm embed`` caches and ``cbm train`` models record their encoder as a spec (``Encoder.spec``: name,
weights, options, fingerprint) or a bare fingerprint string; :func:`rebuild_encoder` builds it again
and checks the fingerprint, :func:`encoder_for` does so for a fitted model and checks its concepts::

    encoder = encoder_for(load_model("runs/xray"))          # the encoder the model was trained on
    X = encoder.encode_images([image])

Importing this module does not import torch; building the encoder does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cbm import encoders
from cbm.exceptions import CBMError, EncoderMismatchError


def recorded_fingerprint(record: Any) -> str | None:
    """The fingerprint in an encoder record (a spec dict with ``fingerprint``, or the string itself)."""
    if isinstance(record, Mapping):
        fp = record.get("fingerprint")
        return None if fp is None else str(fp)
    return None if not record else str(record)


def rebuild_encoder(record: Any, pretrained: str | None = None) -> Any:
    """Rebuild an image encoder from what a cache or model recorded, checked against its fingerprint.

    ``record`` is a spec ``{"name", "pretrained", "fingerprint", ...options}`` (``Encoder.spec``, kept
    by ``cbm embed`` caches and ``cbm train`` models: tags, local checkpoints and image sizes) or a
    bare fingerprint string (``"mobilenet_v2|weights=...|size=96|..."``). ``pretrained`` overrides the
    recorded weights, e.g. a checkpoint that has moved; its fingerprint must still match.
    """
    expected = recorded_fingerprint(record)
    if expected and "|kind=tokens" in expected:  # a token model (cct): the encoder's patch tokens
        base = expected.split("|kind=tokens")[0]
        if isinstance(record, Mapping):  # the token view's spec names its base encoder + "-tokens"
            record = {**record, "fingerprint": base, "name": str(record.get("name", "")).removesuffix("-tokens")}
            size = dict(p.split("=", 1) for p in base.split("|") if "=" in p).get("size", "")
            if "image_size" not in record and size.isdigit():
                record["image_size"] = int(size)
        encoder = rebuild_encoder(record if isinstance(record, Mapping) else base, pretrained).tokens()
        if encoder.fingerprint != expected:
            raise EncoderMismatchError(f"The rebuilt token encoder has fingerprint {encoder.fingerprint!r}, but "
                                       f"the model was trained on {expected!r}.")
        return encoder
    if isinstance(record, Mapping):
        opts = {k: v for k, v in record.items() if k not in ("name", "pretrained", "fingerprint")}
        name, weights = record.get("name"), record.get("pretrained")
    else:
        name, *parts = str(record).split("|")
        kv = dict(p.split("=", 1) for p in parts if "=" in p)
        w = kv.get("weights", "")
        weights = w[4:] if w.startswith("tag:") else None
        opts = {"image_size": int(kv["size"])} if kv.get("size", "").isdigit() else {}
        if name.startswith("openclip:") and "preprocess" in kv:
            size = json.loads(kv["preprocess"]).get("size")
            opts = {"image_size": size if isinstance(size, int) else size[0]} if size else {}
        if w.startswith("sha256:") and pretrained is None:
            raise CBMError(f"The encoder {str(name)!r} was loaded from a local checkpoint ({w}) whose path was "
                           "not recorded; pass the checkpoint file (--pretrained PATH) to rebuild it.")
    try:
        encoder = encoders.create_encoder(str(name), pretrained=pretrained or weights, **opts)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise CBMError(f"Cannot rebuild the image encoder {str(name)!r} (weights {pretrained or weights!r}): {e} "
                       "Pass the checkpoint file with --pretrained PATH if it has moved.") from None
    if expected and getattr(encoder, "fingerprint", expected) != expected:
        raise EncoderMismatchError(f"The rebuilt encoder has fingerprint {encoder.fingerprint!r}, but the model was "
                                   f"trained on {expected!r}; pass the original weights (--pretrained PATH), or "
                                   "embeddings from the original encoder instead.")
    return encoder


def encoder_for(model: Any, pretrained: str | None = None) -> Any:
    """Rebuild the image encoder recorded in the model's fingerprints (``fingerprints_["encoder"]``).

    Accepts a fingerprint string (``"openclip:ViT-B-32|weights=tag:laion2b...|..."``,
    ``"mobilenet_v2|weights=...|size=96|..."``) or a spec dict ``{"name", "pretrained", ...}``
    (local checkpoints included); the rebuilt encoder must reproduce the recorded fingerprint, so
    images embed exactly as in training, and the model's concept vectors must come from it too.
    """
    fp = (getattr(model, "fingerprints_", None) or {}).get("encoder")
    if not fp:
        raise CBMError("This model records no image encoder (fingerprints['encoder'] is empty; it was trained from "
                       "a .npz without 'encoder_spec'), so a new image cannot be embedded. Name the encoder that "
                       "made its embeddings (cbm explain --encoder NAME [--pretrained WEIGHTS]), or explain a "
                       "sample from the evaluation data instead (--sample ID).")
    encoder = rebuild_encoder(fp, pretrained)
    bank = getattr(model, "concepts_", None)
    if bank is not None and hasattr(bank, "check_encoder"):
        bank.check_encoder(getattr(encoder, "fingerprint", None))
    return encoder


__all__ = ["encoder_for", "rebuild_encoder", "recorded_fingerprint"]
