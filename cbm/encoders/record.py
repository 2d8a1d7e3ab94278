"""The encoder record: what a cache, a concept bank or a model keeps about the encoder that made its numbers.

Every reader and writer goes through :class:`EncoderRecord`: ``encoder.record`` makes one,
``EncoderRecord.read`` reads whatever was saved (the JSON dict caches, banks and models write, or
the bare fingerprint string older files and ``data.npz`` hold), ``record.to_dict()`` is what is saved::

    record = EncoderRecord.read(model.fingerprints_["encoder"])
    record.name, record.pretrained, record.image_size, record.fingerprint

The fingerprint names everything that changes the numbers; equal fingerprints mean equal embeddings.
Importing this module does not import torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the keys of the saved dict that are fields of the record; the rest are ``options``
_FIELDS = ("name", "pretrained", "image_size", "fingerprint")


@dataclass(frozen=True)
class EncoderRecord:
    """An encoder as recorded: its factory name, weights, input size, fingerprint and other options."""

    name: str | None = None
    pretrained: str | None = None  # a weights tag or a local checkpoint path; None for the default
    image_size: int | None = None
    fingerprint: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # other create_encoder keyword arguments

    @classmethod
    def read(cls, saved: Any) -> EncoderRecord | None:
        """The record in ``saved``: a record, its dict form, a fingerprint string, or None (nothing recorded)."""
        if saved is None or isinstance(saved, cls):
            return saved
        if isinstance(saved, Mapping):
            size = saved.get("image_size")
            fingerprint = saved.get("fingerprint")
            return cls(name=None if saved.get("name") is None else str(saved["name"]),
                       pretrained=None if saved.get("pretrained") is None else str(saved["pretrained"]),
                       image_size=None if size is None else int(size),
                       fingerprint=None if fingerprint is None else str(fingerprint),
                       options={k: v for k, v in saved.items() if k not in _FIELDS})
        text = str(saved)
        return cls.from_fingerprint(text) if text else None

    @classmethod
    def from_fingerprint(cls, fingerprint: str) -> EncoderRecord:
        """What a bare fingerprint string says: the name, a weights tag and the input size it names."""
        name = fingerprint.split("|")[0]
        kv = _fields(fingerprint)
        weights = kv.get("weights", "")
        size = int(kv["size"]) if kv.get("size", "").isdigit() else None
        if name.startswith("openclip:") and "preprocess" in kv:
            found = json.loads(kv["preprocess"]).get("size")
            size = (found if isinstance(found, int) else found[0]) if found else None
        return cls(name=name, pretrained=weights[4:] if weights.startswith("tag:") else None,
                   image_size=size, fingerprint=fingerprint)

    @property
    def is_tokens(self) -> bool:
        """Whether it records an encoder's patch tokens (a token model such as the CCT), not its pooled features."""
        return bool(self.fingerprint) and "|kind=tokens" in self.fingerprint

    @property
    def weights(self) -> str:
        """The weights as the fingerprint names them: ``tag:<name>``, ``sha256:<hash>`` of a local file, ..."""
        return _fields(self.fingerprint or "").get("weights", "")

    @property
    def needs_checkpoint(self) -> bool:
        """Whether the weights came from a local file whose path was not recorded (only its hash was)."""
        return self.weights.startswith("sha256:") and self.pretrained is None

    def base(self) -> EncoderRecord:
        """For a token record, the record of the encoder whose tokens it holds; otherwise itself."""
        if not self.is_tokens:
            return self
        fingerprint = self.fingerprint.split("|kind=tokens")[0]
        found = EncoderRecord.from_fingerprint(fingerprint)
        return EncoderRecord(name=(self.name or "").removesuffix("-tokens") or found.name,
                             pretrained=self.pretrained, image_size=self.image_size or found.image_size,
                             fingerprint=fingerprint, options=dict(self.options))

    def create_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``create_encoder(record.name, **kwargs)`` rebuilds it with."""
        size = {} if self.image_size is None else {"image_size": self.image_size}
        return {"pretrained": self.pretrained, **size, **self.options}

    def label(self) -> str:
        """The fingerprint, else the name: a short key for caches and pages."""
        return self.fingerprint or self.name or ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form caches, banks and models save (``read`` reads it back)."""
        size = {} if self.image_size is None else {"image_size": self.image_size}
        return {"name": self.name, "pretrained": self.pretrained, **size, **self.options,
                "fingerprint": self.fingerprint}


def _fields(fingerprint: str) -> dict[str, str]:
    """The ``key=value`` parts of a fingerprint (``weights``, ``size``, ``preprocess``, ...)."""
    return dict(part.split("=", 1) for part in fingerprint.split("|")[1:] if "=" in part)


def model_encoder_record(model: Any) -> EncoderRecord | None:
    """The record of the encoder a fitted model was trained on (``fingerprints_["encoder"]``), or None."""
    return EncoderRecord.read((getattr(model, "fingerprints_", None) or {}).get("encoder") or None)


def recorded_fingerprint(saved: Any) -> str | None:
    """The fingerprint of whatever was saved as an encoder record (None when nothing was)."""
    record = EncoderRecord.read(saved)
    return None if record is None else record.fingerprint


__all__ = ["EncoderRecord", "model_encoder_record", "recorded_fingerprint"]
