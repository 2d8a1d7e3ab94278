"""Rebuilding the image encoder a cache or a model recorded, so a new image embeds exactly as in training.

``cbm embed`` caches and ``cbm train`` models record their encoder (:class:`~cbm.encoders.record.EncoderRecord`:
name, weights, image size, options, fingerprint; older files a bare fingerprint string); :func:`rebuild_encoder` builds it again
and checks the fingerprint, :func:`encoder_for` does so for a fitted model and checks its concepts::

    encoder = encoder_for(load_model("runs/xray"))          # the encoder the model was trained on
    X = encoder.encode_images([image])

Importing this module does not import torch; building the encoder does.
"""

from __future__ import annotations

from typing import Any

from cbm import encoders
from cbm.encoders.record import EncoderRecord, model_encoder_record, recorded_fingerprint
from cbm.exceptions import CBMError, EncoderMismatchError


def rebuild_encoder(record: Any, pretrained: str | None = None) -> Any:
    """Rebuild an image encoder from what a cache or model recorded, checked against its fingerprint.

    ``record`` is an :class:`~cbm.encoders.record.EncoderRecord` or what one saves: a dict
    ``{"name", "pretrained", "image_size", "fingerprint", ...options}`` (``Encoder.spec``, kept by
    ``cbm embed`` caches and ``cbm train`` models: tags, local checkpoints and image sizes) or a bare
    fingerprint string (``"mobilenet_v2|weights=...|size=96|..."``). ``pretrained`` overrides the
    recorded weights, e.g. a checkpoint that has moved; its fingerprint must still match.
    """
    record = EncoderRecord.read(record) or EncoderRecord()
    if record.is_tokens:  # a token model (cct): the base encoder's patch tokens
        encoder = rebuild_encoder(record.base(), pretrained).tokens()
        if encoder.fingerprint != record.fingerprint:
            raise EncoderMismatchError(f"The rebuilt token encoder has fingerprint {encoder.fingerprint!r}, but "
                                       f"the model was trained on {record.fingerprint!r}.")
        return encoder
    if record.needs_checkpoint and pretrained is None:
        raise CBMError(f"The encoder {str(record.name)!r} was loaded from a local checkpoint ({record.weights}) whose path "
                       "was not recorded; pass the checkpoint file (--pretrained PATH) to rebuild it.")
    kwargs = record.create_kwargs()
    kwargs["pretrained"] = pretrained or record.pretrained
    try:
        encoder = encoders.create_encoder(str(record.name), **kwargs)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise CBMError(f"Cannot rebuild the image encoder {str(record.name)!r} (weights {kwargs['pretrained']!r}): "
                       f"{e} Pass the checkpoint file with --pretrained PATH if it has moved.") from None
    if record.fingerprint and getattr(encoder, "fingerprint", record.fingerprint) != record.fingerprint:
        raise EncoderMismatchError(f"The rebuilt encoder has fingerprint {encoder.fingerprint!r}, but the model was "
                                   f"trained on {record.fingerprint!r}; pass the original weights (--pretrained "
                                   "PATH), or embeddings from the original encoder instead.")
    return encoder


def encoder_for(model: Any, pretrained: str | None = None) -> Any:
    """Rebuild the image encoder recorded in the model's fingerprints (``fingerprints_["encoder"]``).

    Accepts a fingerprint string (``"openclip:ViT-B-32|weights=tag:laion2b...|..."``,
    ``"mobilenet_v2|weights=...|size=96|..."``) or a spec dict ``{"name", "pretrained", ...}``
    (local checkpoints included); the rebuilt encoder must reproduce the recorded fingerprint, so
    images embed exactly as in training, and the model's concept vectors must come from it too.
    """
    record = model_encoder_record(model)
    if record is None:
        raise CBMError("This model records no image encoder (fingerprints['encoder'] is empty; it was trained from "
                       "a .npz without 'encoder_spec'), so a new image cannot be embedded. Name the encoder that "
                       "made its embeddings (cbm explain --encoder NAME [--pretrained WEIGHTS]), or explain a "
                       "sample from the evaluation data instead (--sample ID).")
    encoder = rebuild_encoder(record, pretrained)
    bank = getattr(model, "concepts_", None)
    if bank is not None and hasattr(bank, "check_encoder"):
        bank.check_encoder(getattr(encoder, "fingerprint", None))
    return encoder


__all__ = ["encoder_for", "rebuild_encoder", "recorded_fingerprint"]  # recorded_fingerprint: its old home
