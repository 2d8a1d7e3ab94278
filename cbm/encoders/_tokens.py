"""Patch tokens: an encoder's spatial features before pooling, (N, T, d) with T = h * w.

``TokenView(encoder)`` (or ``encoder.tokens()``) is the same encoder seen as a token encoder: its
``encode_images`` returns (N, T, d) patch tokens and its ``fingerprint`` says so, so the
:class:`~cbm.store.EmbeddingStore` caches tokens beside (never instead of) pooled embeddings::

    enc = create_encoder("mobilenet_v2", image_size=224)     # 7 x 7 tokens of 1280-d
    tokens = enc.encode_tokens(images)                        # (N, 49, 1280) float32
    cache = EmbeddingStore().get_or_compute(enc, dataset, kind="tokens")   # (N, 49, 1280) float16

MobileNetV2's tokens are its last feature map (stride 32: an input of 32 * g pixels gives g x g
tokens, so 224 px gives 7 x 7); open_clip ViTs give their patch tokens (after ``ln_post``, class
token dropped, width-d, before the projection).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cbm._images import to_rgb
from cbm.encoders._base import Encoder
from cbm.encoders.record import EncoderRecord


class TokenView(Encoder):
    """An image encoder whose embeddings are its patch tokens (N, T, d).

    Attributes
    ----------
    base : Encoder
        The wrapped encoder (its preprocessing and weights).
    token_grid : tuple of int
        (h, w) with h * w = T, row-major.
    dim : int
        Token dimension d.
    """

    supports_text = False

    def __init__(self, base: Encoder) -> None:
        if not base.supports_images:
            raise TypeError(f"Encoder {base.name!r} has no image tower, so it has no patch tokens.")
        self.base = base
        self.name = f"{base.name}-tokens"
        self.device = base.device
        probe = self.preprocess(to_rgb(np.zeros((8, 8, 3), np.uint8)))[None]
        with torch.inference_mode():
            t = base._encode_tokens_batch(probe.to(self.device))
        if t.ndim != 3:
            raise ValueError(f"{type(base).__name__}._encode_tokens_batch must return (B, T, d); got {tuple(t.shape)}.")
        n_tokens, self.dim = int(t.shape[1]), int(t.shape[2])
        self.token_grid = getattr(base, "_token_grid", None) or _square(n_tokens)
        self.n_tokens = n_tokens

    @property
    def fingerprint(self) -> str:
        """The base encoder's fingerprint with the token kind and grid."""
        h, w = self.token_grid
        return f"{self.base.fingerprint}|kind=tokens|grid={h}x{w}"

    @property
    def record(self) -> EncoderRecord:
        """The base encoder's record under the token view's name and fingerprint."""
        base = self.base.record
        return EncoderRecord(name=self.name, pretrained=base.pretrained, image_size=base.image_size,
                             fingerprint=self.fingerprint, options=dict(base.options))

    @property
    def row_shape(self) -> tuple[int, int]:
        """Shape of one image's entry: (T, d)."""
        return (self.n_tokens, self.dim)

    def preprocess(self, image: Any) -> torch.Tensor:
        """The base encoder's preprocessing."""
        return self.base.preprocess(image)

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.base._encode_tokens_batch(x)

    def encode_images(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Patch tokens (N, T, d) float32 of images (any input ``Encoder.encode_images`` takes)."""
        out = super().encode_images(images, batch_size=batch_size)
        return out.reshape(0, *self.row_shape) if out.size == 0 else out

    encode_tokens = encode_images


def _square(n: int) -> tuple[int, int]:
    side = int(round(n ** 0.5))
    return (side, side) if side * side == n else (1, n)
