"""The ``Encoder`` interface every image/text encoder in cbmkit implements.

An encoder turns images (PIL images, uint8 arrays, or an already preprocessed batch tensor) into
``(N, d)`` float32 numpy embeddings, and, when it has a text tower, texts into ``(n, d)``
embeddings in the same space. Its ``fingerprint`` names everything that changes the numbers
(model, weights, preprocessing incl. resolution), so caches and concept banks can be keyed by it::

    enc = create_encoder("mobilenet_v2", image_size=96)
    X = enc.encode_images([pil_image, uint8_array])     # (2, 1280) float32
    enc.fingerprint                                     # 'mobilenet_v2|weights=imagenet1k_v1:b0353104|...'

Subclasses implement ``_encode_batch`` (and ``_encode_text_batch`` for text) and set ``dim``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from cbm._images import to_rgb
from cbm._io import sha256_file
from cbm.encoders.record import EncoderRecord
from cbm.exceptions import CBMError


class EncoderLoadError(CBMError, ValueError):
    """Weights or a checkpoint cannot be loaded into the requested encoder."""


def unreadable_checkpoint(path: str | Path, error: BaseException) -> EncoderLoadError:
    """One line for a checkpoint file that torch cannot load: which file, why, what to do."""
    text = str(error)
    if "Weights only load failed" in text:
        why = ("it holds pickled Python objects besides tensors, which cbmkit does not load because "
               "unpickling them can run code")
    else:
        first = text.strip().splitlines()[0] if text.strip() else ""
        detail = f"{type(error).__name__}: {first[:160]}" if first else type(error).__name__
        why = f"it is not a torch checkpoint or a .safetensors file, or it is damaged ({detail})"
    return EncoderLoadError(f"Cannot load checkpoint {str(path)!r}: {why}. Pass a .safetensors file or a "
                            "torch state dict of tensors only (re-save it with torch.save(model.state_dict(), "
                            "path)).")


class NoTextTowerError(CBMError, NotImplementedError):
    """The encoder has no text tower (or no image tower) for the requested call."""


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:  # size, mtime: part of the cache key
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime within the process)."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters and buffers; names randomly initialised weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def describe_mismatch(module: torch.nn.Module, state_dict: dict[str, Any]) -> str:
    """Summarise why ``state_dict`` does not fit ``module`` (counts and first examples)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state_dict and hasattr(state_dict[k], "shape") and state_dict[k].shape != v.shape]
    parts = [f"{len(xs)} {what} (e.g. {xs[0]!r})" for what, xs in
             (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if xs]
    return ", ".join(parts) or "keys and shapes match"


class Encoder:
    """Base class: batching, input conversion and the text/image capability checks.

    Attributes
    ----------
    name : str
        Registry name (``create_encoder(name)``).
    dim : int
        Embedding dimension d.
    device : torch.device
    supports_images, supports_text : bool
        Which towers the encoder has.
    """

    name: ClassVar[str] = "encoder"
    supports_images: ClassVar[bool] = True
    supports_text: ClassVar[bool] = False
    dim: int
    device: torch.device

    # -- subclass hooks ---------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Stable string naming model, weights and preprocessing; equal strings = equal numbers."""
        raise NotImplementedError

    @property
    def record(self) -> EncoderRecord:
        """What caches, banks and models record about this encoder: how to rebuild it and its fingerprint."""
        return EncoderRecord(name=self.name, fingerprint=self.fingerprint)

    @property
    def spec(self) -> dict[str, Any]:
        """The saved (JSON) form of :attr:`record`."""
        return self.record.to_dict()

    def preprocess(self, image: Any) -> torch.Tensor:
        """One PIL image or uint8 array -> a (3, H, W) float tensor ready for the model."""
        raise NoTextTowerError(f"Encoder {self.name!r} has no image tower; use it for texts only.")

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Subclass hook: (B, 3, H, W) preprocessed batch on ``device`` -> (B, d) features."""
        raise NotImplementedError

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor | np.ndarray:
        """Subclass hook: a list of texts -> (n, d) features."""
        raise NotImplementedError

    def _encode_tokens_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Subclass hook: (B, 3, H, W) preprocessed batch -> (B, T, d_tokens) patch tokens, row-major."""
        raise NotImplementedError(f"Encoder {self.name!r} has no token (patch feature) output.")

    # -- public API -------------------------------------------------------------------------
    def preprocess_batch(self, images: Sequence[Any]) -> torch.Tensor:
        """Preprocess a sequence of PIL images / uint8 arrays into one (B, 3, H, W) tensor."""
        return torch.stack([self.preprocess(to_rgb(im)) for im in images])

    def encode_images(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Embed images; returns (N, d) float32 (raw features, not L2-normalised).

        ``images`` may be one PIL image, a sequence of PIL images or uint8 arrays (H, W) /
        (H, W, C), a uint8 array/tensor (N, H, W[, C]), or a float tensor (N, C, H, W) that is
        already preprocessed (C=1 is repeated to 3 channels).
        """
        if not self.supports_images:
            raise NoTextTowerError(
                f"Encoder {self.name!r} is text-only and cannot embed images; use an image "
                "encoder such as 'mobilenet_v2' or 'openclip:<arch>'."
            )
        if isinstance(images, torch.Tensor) and images.is_floating_point():
            if images.ndim != 4:
                raise ValueError(f"A float image tensor must be (N, C, H, W); got shape {tuple(images.shape)}.")
            batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
            batches = [b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b for b in batches]
        else:
            if hasattr(images, "mode") and hasattr(images, "size"):  # a single PIL image
                images = [images]
            elif isinstance(images, torch.Tensor):
                images = images.numpy()
            items = list(images)
            batches = (self.preprocess_batch(items[i : i + batch_size])
                       for i in range(0, len(items), batch_size))
        out = [self._run(b) for b in batches]
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def encode_tokens(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Patch tokens of images: (N, T, d_tokens) float32, T = h * w in row-major order.

        Takes what :meth:`encode_images` takes. ``token_grid`` gives (h, w); ``token_dim`` gives d.
        """
        return self.tokens().encode_images(images, batch_size=batch_size)

    def tokens(self) -> Any:
        """This encoder seen as a token encoder (``TokenView``: fingerprint, dim and grid of the tokens)."""
        if getattr(self, "_token_view", None) is None:
            self._token_view = TokenView(self)
        return self._token_view

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Embed texts into the encoder's space; returns (n, d) float32."""
        if not self.supports_text:
            raise NoTextTowerError(
                f"Encoder {self.name!r} is image-only and cannot embed text. For concept texts use a "
                "multimodal encoder (create_encoder('openclip:ViT-B-32', pretrained=...)) or the "
                "text encoder create_encoder('minilm')."
            )
        if isinstance(texts, str):
            raise TypeError(f"encode_text takes a list of texts, not one string ({texts[:40]!r}).")
        texts = list(texts)
        out = []
        for i in range(0, len(texts), batch_size):
            with torch.inference_mode():
                z = self._encode_text_batch(texts[i : i + batch_size])
            out.append(z.float().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _run(self, x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self._encode_batch(x.to(self.device, non_blocking=True)).float().cpu().numpy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r}, dim={self.dim}, device={str(self.device)!r})"


class TokenView(Encoder):
    """An image encoder whose embeddings are its patch tokens (N, T, d).

    ``TokenView(encoder)`` (or ``encoder.tokens()``) is the same encoder seen as a token encoder: its
    ``encode_images`` returns (N, T, d) patch tokens and its ``fingerprint`` says so, so the
    :class:`~cbm.store.EmbeddingStore` caches tokens beside (never instead of) pooled embeddings::

        enc = create_encoder("mobilenet_v2", image_size=224)     # 7 x 7 tokens of 1280-d
        tokens = enc.encode_tokens(images)                        # (N, 49, 1280) float32
        cache = EmbeddingStore().get_or_compute(enc, dataset, kind="tokens")   # (N, 49, 1280) float16

    MobileNetV2's tokens are its last feature map (stride 32: an input of 32 * g pixels gives g x g
    tokens, so 224 px gives 7 x 7); open_clip ViTs give their patch tokens (after ``ln_post``, class
    token dropped, width-d, before the projection).

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
