"""Image and text encoders behind one small factory.

    enc = create_encoder("mobilenet_v2", image_size=96)              # offline ImageNet backbone
    enc = create_encoder("openclip:ViT-B-32", pretrained="laion2b_s34b_b79k")   # image + text
    enc = create_encoder("openclip:cbm-tiny-clip")                   # tiny random CLIP (tests)
    enc = create_encoder("minilm")                                   # text only, 384-d
    enc = create_encoder("aligned", pretrained="runs/aligned")       # offline CLIP stand-in
    X = enc.encode_images(images)      # (N, d) float32     T = enc.encode_text(texts)  # (n, d)
    enc.fingerprint                    # keys caches and concept banks

``pretrained=None`` means the encoder's default weights available offline: the bundled ImageNet
weights for ``mobilenet_v2``, the bundled model for ``minilm`` and random init for open_clip
(which has no bundled weights). ``"random"`` asks for random init; a path loads a checkpoint.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbm.exceptions import unknown_name_message

if TYPE_CHECKING:  # torch loads with the first encoder, not with `import cbm.encoders`
    from cbm.encoders._base import Encoder

__all__ = [
    "create_encoder", "has_text_tower", "list_encoders",
    "Encoder", "EncoderLoadError", "NoTextTowerError", "resolve_device",
    "MobileNetV2Encoder", "OpenCLIPEncoder", "MiniLMEncoder", "TextAlignedEncoder",
]

#: Largest input resolution an encoder is built for (a 4096 px RGB batch of 64 is already 12 GB).
MAX_IMAGE_SIZE = 4096

_ENCODERS = {
    "mobilenet_v2": ("cbm.encoders.mobilenet", "MobileNetV2Encoder"),
    "minilm": ("cbm.encoders.minilm", "MiniLMEncoder"),
    "openclip": ("cbm.encoders.openclip", "OpenCLIPEncoder"),
    "aligned": ("cbm.encoders.aligned", "TextAlignedEncoder"),
}


#: names that need torch, from the modules that define them
_LAZY = {"Encoder": "cbm.encoders._base", "EncoderLoadError": "cbm.encoders._base",
         "NoTextTowerError": "cbm.encoders._base", "resolve_device": "cbm.tensors",
         **{cls: module for module, cls in _ENCODERS.values()}}


def __getattr__(name: str) -> Any:
    """Encoders and their helpers load lazily (torch, open_clip and sentence-transformers are slow
    to import), so rebuilding one from a record and naming them stays cheap."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cbm.encoders' has no attribute {name!r}")


def list_encoders(include_openclip: bool = True) -> list[str]:
    """Names ``create_encoder`` accepts; open_clip architectures appear as ``openclip:<arch>``."""
    names = ["mobilenet_v2", "minilm", "aligned"]
    if include_openclip:
        from cbm.encoders.openclip import list_architectures

        names += [f"openclip:{a}" for a in list_architectures()]
    return names


def has_text_tower(name: str) -> bool:
    """Whether encoder ``name`` (or a recorded fingerprint, ``"mobilenet_v2|weights=..."``) also embeds
    text, decided without building it: MobileNetV2 and token views no; MiniLM, aligned, OpenCLIP yes."""
    base = str(name).split("|")[0]
    if "|kind=tokens" in str(name) or base.endswith("-tokens"):
        return False
    if base.startswith("openclip"):
        return True
    if base not in _ENCODERS:
        return False
    module, cls = _ENCODERS[base]
    return bool(getattr(importlib.import_module(module), cls).supports_text)


def create_encoder(name: str, pretrained: str | Path | None = None, **kwargs: Any) -> Encoder:
    """Build an encoder by name.

    Parameters
    ----------
    name : str
        "mobilenet_v2", "minilm", "aligned" (a text-aligned stand-in for CLIP, pretrained= its
        folder), "openclip:<arch>" (or a bare open_clip architecture name).
    pretrained : str or path, optional
        Weights tag, local checkpoint path, "random", or None for the default (see module doc).
    **kwargs
        Encoder options: ``device`` ("auto"), ``image_size``, and open_clip overrides.
    """
    if not isinstance(name, str):
        raise TypeError(f"Encoder name must be a string; got {type(name).__name__}.")
    if name.startswith("openclip:"):
        kwargs["model_name"] = name.split(":", 1)[1]
        name = "openclip"
    elif name not in _ENCODERS:
        from cbm.encoders.openclip import list_architectures

        if name not in list_architectures():
            raise ValueError(unknown_name_message("encoder", name, list_encoders()))
        kwargs["model_name"], name = name, "openclip"
    size = kwargs.get("image_size")
    if size is not None and not (isinstance(size, int) and 8 <= size <= MAX_IMAGE_SIZE):
        raise ValueError(f"image_size must be a whole number of pixels in 8..{MAX_IMAGE_SIZE}; got {size!r}.")
    module, cls = _ENCODERS[name]
    return getattr(importlib.import_module(module), cls)(pretrained=pretrained, **kwargs)
