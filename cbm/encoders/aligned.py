"""A text-aligned stand-in for CLIP, for when no CLIP weights can be had (offline, air-gapped).

Methods that score concepts by text–image similarity (LaBo, Label-free CBM, Sparse-CBM, Concept
Matrix Search, "add a concept from text") need images and texts in one space. Without CLIP
weights, cbmkit fits a linear map from an offline image encoder's features (MobileNetV2) into an
offline text encoder's space (MiniLM) on image–caption pairs the data provides, in the manner of
locked-image text tuning (Zhai et al., LiT, 2022) with both towers locked: only the map is learned,
with a contrastive loss against the captions' embeddings::

    alignment = fit_text_alignment(X_train, captions, create_encoder("minilm"),
                                   image_encoder={"name": "mobilenet_v2", "image_size": 96})
    alignment.save("runs/aligned")
    enc = create_encoder("aligned", pretrained="runs/aligned")   # images and texts, 384-d

**What it is not**: CLIP. It knows only what its captions taught it. Captions built from class names
and their concepts make image embeddings land near the texts of their class's concepts, so concept
scores through it are class evidence in text form; a concept no caption mentions is scored only by
MiniLM's text similarity to concepts that were. Use it to run the text-based methods end to end on
real images offline; reproduce the papers' numbers with real CLIP weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cbm.arrays import unit_rows
from cbm.encoders._base import Encoder, EncoderLoadError
from cbm.tensors import resolve_device

ALIGNMENT_FILE = "alignment.safetensors"
CONFIG_FILE = "alignment.json"


@dataclass
class TextAlignment:
    """A fitted linear map from image features (d_img) into a text encoder's space (d_txt)."""

    weight: np.ndarray                 # (d_img, d_txt)
    bias: np.ndarray                   # (d_txt,)
    mean: np.ndarray                   # (d_img,) feature mean removed before the map
    scale: float                       # features are divided by it after centring
    image_encoder: dict[str, Any]      # how to rebuild the image encoder: name, pretrained, image_size
    image_fingerprint: str
    text_encoder: str
    text_fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Names the image encoder, the text encoder and the map's numbers."""
        h = hashlib.sha256()
        for a in (self.weight, self.bias, self.mean, np.float32(self.scale)):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
        return (f"aligned|map={h.hexdigest()[:16]}|image={self.image_fingerprint}"
                f"|text={self.text_fingerprint}")

    def project(self, X: Any) -> np.ndarray:
        """Image features (N, d_img) -> unit vectors (N, d_txt) in the text encoder's space."""
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != self.weight.shape[0]:
            raise ValueError(f"TextAlignment.project expects (N, {self.weight.shape[0]}) features "
                             f"from {self.image_fingerprint!r}; got shape {X.shape}.")
        return unit_rows((X - self.mean) / self.scale @ self.weight + self.bias).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``alignment.safetensors`` + ``alignment.json`` into folder ``path`` (atomically)."""
        from safetensors.numpy import save_file

        from cbm._io import atomic_write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / (ALIGNMENT_FILE + ".tmp")
        save_file({"weight": np.ascontiguousarray(self.weight, np.float32),
                   "bias": np.ascontiguousarray(self.bias, np.float32),
                   "mean": np.ascontiguousarray(self.mean, np.float32)}, str(tmp))
        tmp.replace(path / ALIGNMENT_FILE)
        config = {"format": "cbmkit-text-alignment", "version": 1, "scale": float(self.scale),
                  "image_encoder": self.image_encoder, "image_fingerprint": self.image_fingerprint,
                  "text_encoder": self.text_encoder, "text_fingerprint": self.text_fingerprint,
                  "fingerprint": self.fingerprint, "info": self.info}
        atomic_write_json(path / CONFIG_FILE, config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextAlignment:
        """Read a folder written by :meth:`save`; errors name the file and what to do."""
        from safetensors.numpy import load_file

        from cbm._io import read_json

        path = Path(path)
        cfg_file, arr_file = path / CONFIG_FILE, path / ALIGNMENT_FILE
        if not cfg_file.is_file() or not arr_file.is_file():
            raise EncoderLoadError(f"{str(path)!r} is not a text alignment folder (needs {CONFIG_FILE} "
                                   f"and {ALIGNMENT_FILE}); make one with fit_text_alignment(...).save().")
        cfg = read_json(cfg_file, "text alignment config")
        if not isinstance(cfg, dict) or cfg.get("format") != "cbmkit-text-alignment":
            raise EncoderLoadError(f"{str(cfg_file)!r} is not a cbmkit text alignment config.")
        try:
            arrays = load_file(str(arr_file))
            out = cls(arrays["weight"], arrays["bias"], arrays["mean"], float(cfg["scale"]),
                      dict(cfg["image_encoder"]), str(cfg["image_fingerprint"]),
                      str(cfg["text_encoder"]), str(cfg["text_fingerprint"]), dict(cfg.get("info", {})))
        except Exception as e:  # noqa: BLE001 - any malformed file gets the same advice
            raise EncoderLoadError(f"Cannot read text alignment {str(path)!r} ({type(e).__name__}: "
                                   f"{e}); refit it with fit_text_alignment.") from None
        if cfg.get("fingerprint") not in (None, out.fingerprint):
            raise EncoderLoadError(f"{str(arr_file)!r} does not match the fingerprint recorded in "
                                   f"{str(cfg_file)!r}; the folder was changed after saving. Refit it.")
        return out


def class_captions(classes: Sequence[str], bank: Any | None = None,
                   template: str = "a photo of a {cls}") -> dict[str, list[str]]:
    """Captions per class: the class name, and one per concept the bank's prior answers "yes".

    ``bank`` is a :class:`~cbm.bank.ConceptBank` with a class prior (optional). These are the
    only facts the stand-in learns.
    """
    out = {c: [template.format(cls=c)] for c in classes}
    if bank is not None and getattr(bank, "prior", None) is not None:
        for c in classes:
            k = bank.class_index(c)
            out[c] += [f"{template.format(cls=c)} with {bank.texts[j]}"
                       for j in np.flatnonzero(np.asarray(bank.prior)[k] > 0)]
    return out


def fit_text_alignment(
    X: Any,
    captions: Sequence[str] | Sequence[Sequence[str]],
    text_encoder: Any,
    *,
    image_encoder: Mapping[str, Any],
    image_fingerprint: str | None = None,
    temperature: float = 0.05,
    epochs: int = 300,
    lr: float = 1e-2,
    l2: float = 1e-4,
    random_state: int = 0,
) -> TextAlignment:
    """Fit the linear image->text map on image features and their captions.

    The map starts at the ridge solution onto the mean caption embedding and is refined by a
    full-batch InfoNCE loss over all distinct captions (soft targets over each image's captions).

    Parameters
    ----------
    X : (N, d_img) image features (e.g. cached MobileNetV2 embeddings).
    captions : one caption per image, or a list of captions per image (all count as positives).
    text_encoder : the locked text tower (``encode_text``), e.g. ``create_encoder("minilm")``.
    image_encoder : how to rebuild the image tower: ``{"name": ..., "pretrained": ...,
        "image_size": ...}`` (passed to ``create_encoder`` when the stand-in is loaded).
    image_fingerprint : the features' encoder fingerprint (checked when the stand-in is loaded).
    """
    X = np.asarray(X, np.float32)
    if X.ndim != 2 or len(X) != len(captions) or len(X) < 2:
        raise ValueError(f"fit_text_alignment needs (N, d) features with N >= 2 and one caption "
                         f"(list) per image; got X {X.shape} and {len(captions)} captions.")
    per_image = [[c] if isinstance(c, str) else list(c) for c in captions]
    if any(not cs or not all(isinstance(c, str) and c.strip() for c in cs) for cs in per_image):
        raise ValueError("Every image needs at least one non-empty caption.")
    texts = sorted({c for cs in per_image for c in cs})
    col = {t: j for j, t in enumerate(texts)}
    T = unit_rows(np.asarray(text_encoder.encode_text(texts), np.float64))
    targets = np.zeros((len(X), len(texts)))
    for i, cs in enumerate(per_image):
        targets[i, [col[c] for c in cs]] = 1.0 / len(cs)

    mean = X.mean(0)
    scale = float((X - mean).std() or 1.0)
    Z = (X - mean) / scale
    goal = targets @ T
    ridge = np.linalg.solve(Z.T.astype(np.float64) @ Z + len(Z) * 1e-2 * np.eye(Z.shape[1]),
                            Z.T.astype(np.float64) @ goal)
    g = torch.Generator().manual_seed(int(random_state))
    W = torch.nn.Parameter(torch.as_tensor(ridge, dtype=torch.float32))
    b = torch.nn.Parameter(torch.zeros(T.shape[1]) + 1e-3 * torch.randn(T.shape[1], generator=g))
    Zt, Tt = torch.as_tensor(Z), torch.as_tensor(T, dtype=torch.float32)
    Yt = torch.as_tensor(targets, dtype=torch.float32)
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(int(epochs)):
        opt.zero_grad()
        emb = torch.nn.functional.normalize(Zt @ W + b, dim=1)
        logits = emb @ Tt.T / temperature
        loss = -(Yt * torch.log_softmax(logits, 1)).sum(1).mean() + l2 * (W ** 2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        emb = torch.nn.functional.normalize(Zt @ W + b, dim=1)
        top1 = float((Yt.gather(1, (emb @ Tt.T).argmax(1, keepdim=True)) > 0).float().mean())
    fp_img = image_fingerprint or str(image_encoder.get("fingerprint", image_encoder.get("name")))
    return TextAlignment(
        W.detach().numpy(), b.detach().numpy(), mean, scale, dict(image_encoder), fp_img,
        getattr(text_encoder, "name", type(text_encoder).__name__),
        getattr(text_encoder, "fingerprint", "?"),
        {"n_images": len(X), "n_captions": len(texts), "epochs": int(epochs),
         "temperature": temperature, "final_loss": float(loss.detach()),
         "train_caption_top1": top1, "method": "locked towers, linear image map, InfoNCE"})


class TextAlignedEncoder(Encoder):
    """Images through an offline image encoder and a fitted map, texts through the text encoder.

    Parameters
    ----------
    pretrained : path
        A folder written by :meth:`TextAlignment.save`.
    device : str
    """

    name = "aligned"
    supports_text = True

    def __init__(self, pretrained: str | Path | None = None, device: str | torch.device = "auto",
                 alignment: TextAlignment | None = None) -> None:
        from cbm.encoders import create_encoder

        if alignment is None:
            if pretrained is None:
                raise EncoderLoadError("create_encoder('aligned') needs pretrained=<folder written by "
                                       "TextAlignment.save>; fit one with fit_text_alignment.")
            alignment = TextAlignment.load(pretrained)
        self.alignment = alignment
        self.device = resolve_device(device)
        spec = dict(alignment.image_encoder)
        self.image_encoder = create_encoder(spec.pop("name"), device=self.device, **spec)
        if self.image_encoder.fingerprint != alignment.image_fingerprint:
            raise EncoderLoadError(
                f"The text alignment was fitted on {alignment.image_fingerprint!r} features but its "
                f"image encoder now builds as {self.image_encoder.fingerprint!r}; refit the alignment.")
        self.text_encoder = create_encoder(alignment.text_encoder, device=self.device)
        self.dim = int(alignment.weight.shape[1])

    @property
    def fingerprint(self) -> str:
        """The alignment's fingerprint (image encoder, text encoder and the map's numbers)."""
        return self.alignment.fingerprint

    def preprocess(self, image: Any) -> torch.Tensor:
        """The image encoder's preprocessing (the map works on its features)."""
        return self.image_encoder.preprocess(image)

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.alignment.project(self.image_encoder.encode_images(x)))

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        return unit_rows(np.asarray(self.text_encoder.encode_text(texts), np.float32))
