"""Repair at the source: neutralise an artifact in the image before it is embedded.

A model whose artifact concept (a tag in the corner, a ruler, a site marker) was neutralised at
the source (:class:`cbm.edits.source.NeutraliseAtSource`) carries a ``source_repair_`` record: the
concept's own predictor (vector and intercept, in the model's concept scoring space), its
threshold and how to repair. :func:`embed_for_model` turns images into embeddings for a model,
applying that repair when the model has one::

    X = embed_for_model(model, images, encoder)   # = encoder.encode_images(images) without a repair

Per image, the concept is scored on the pooled embedding; where it fires, the artifact is located
with the model's own evidence only (never true positions): the concept's score is linearised at
the encoder's stride-16 feature map, and each cell's evidence is the first-order drop of the score
when that cell is set to the image's background (the median of the border cells), a Grad-CAM with
a background reference. The fewest cells predicted to switch the concept off (at most
``max_cells``) are neutralised: with ``method="fill"`` the cells' input region (plus ``margin`` of a
cell) is filled with the median of the image's border pixels and the image is re-embedded; with
``method="tokens"`` the cells' features are set to the background's and only the later stages run
again. Images where the concept does not fire are embedded as they are.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cbm.exceptions import CBMError

#: The repair methods: fill the input region and re-embed, or fill the located feature cells.
METHODS = ("fill", "tokens")
#: The feature stage the artifact is located at (MobileNetV2: the end of the stride-16 stage).
DEFAULT_LAYER = 14


class SourceRepairError(CBMError, ValueError):
    """A model's source repair cannot be applied to what it was given (embeddings, another encoder)."""


def source_repair(model: Any) -> dict[str, Any] | None:
    """The model's source repair record (concept, vector, intercept, threshold, method, ...), or None."""
    return getattr(model, "source_repair_", None)


def describe(model: Any) -> str:
    """One line on the model's source repair ("" without one)."""
    rep = source_repair(model)
    if rep is None:
        return ""
    return (f"source repair: {rep['concept']!r} located by the model's own evidence and neutralised "
            f"({rep['method']}, threshold {rep['threshold']:g}, margin {rep['margin']:g} cell, "
            f"at most {rep['max_cells']} cells)")


def require_images(model: Any, what: str = "these embeddings") -> None:
    """Raise when ``model`` has a source repair: it needs the images, not pooled embeddings."""
    rep = source_repair(model)
    if rep is not None:
        raise SourceRepairError(
            f"This model neutralises {rep['concept']!r} at the source (in the image, before it is embedded), so "
            f"it cannot predict from {what}: pooled embeddings still carry the artifact. Give it the images "
            "(cbm predict MODEL --images FOLDER, or cbm.models.source_repair.embed_for_model(model, images, encoder)).")


def to_tensors(rep: dict[str, Any]) -> dict[str, np.ndarray]:
    """A repair record as named arrays (saved with the model's weights)."""
    meta = {k: v for k, v in rep.items() if k not in ("vector", "intercept")}
    return {"source_repair.vector": np.asarray(rep["vector"], np.float32),
            "source_repair.intercept": np.asarray([rep["intercept"]], np.float32),
            "source_repair.meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8).copy()}


def from_tensors(tensors: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The repair record saved by :func:`to_tensors` (None when there is none)."""
    if "source_repair.vector" not in tensors:
        return None
    meta = json.loads(np.asarray(tensors["source_repair.meta"], np.uint8).tobytes().decode())
    return {**meta, "vector": np.asarray(tensors["source_repair.vector"], np.float32),
            "intercept": float(np.asarray(tensors["source_repair.intercept"]).ravel()[0])}


def check_encoder(encoder: Any) -> Any:
    """The encoder's feature stages (an ``nn.Sequential``), or a clear error when it has none."""
    features = getattr(getattr(encoder, "model", None), "features", None)
    if features is None or not hasattr(features, "__getitem__") or not hasattr(encoder, "preprocess"):
        raise SourceRepairError(
            f"A source repair locates the artifact in the encoder's feature maps, which "
            f"{type(encoder).__name__} does not expose; use the model's MobileNetV2 encoder "
            "(create_encoder('mobilenet_v2', ...) or cbm.encoders.rebuild.encoder_for(model)).")
    return features


def embed_for_model(model: Any, images: Any, encoder: Any, batch_size: int = 64) -> np.ndarray:
    """Embeddings (N, d) of ``images`` for ``model``: the encoder's, with the model's source repair
    applied when it has one."""
    if source_repair(model) is None:
        return np.asarray(encoder.encode_images(images, batch_size=batch_size), np.float32)
    return repair_images(model, images, encoder, batch_size=batch_size)[0]


def model_embeddings(model: Any, X: Any, images: Any = None, encoder: Any = None,
                     what: str = "these embeddings") -> np.ndarray:
    """The embeddings ``model`` predicts from: ``X`` as they are, or, when the model neutralises a
    concept at the source, ``images`` embedded with that repair (``encoder``: default the model's
    recorded one). Without images such a model is refused (:func:`require_images`): its pooled
    embeddings still carry the artifact."""
    if source_repair(model) is None:
        return X
    if images is None:
        require_images(model, what)
    if encoder is None:
        from cbm.encoders.rebuild import encoder_for

        encoder = encoder_for(model)
    return embed_for_model(model, images, encoder)


def repair_images(model: Any, images: Any, encoder: Any, batch_size: int = 64,
                  repair: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Repaired embeddings (N, d) and where the artifact was found: ``fired`` (N,) bool, ``boxes``
    (per image, a list of (top, left, bottom, right) in the encoder's input pixels), ``size`` (the
    encoder's input side). ``repair`` defaults to the model's own record."""
    import torch

    rep = repair if repair is not None else source_repair(model)
    if rep is None:
        raise SourceRepairError("This model has no source repair; apply NeutraliseAtSource first.")
    features = check_encoder(encoder)
    items = _as_list(images)
    out, fired, boxes = [], [], []
    for s in range(0, len(items), batch_size):
        x = torch.stack([encoder.preprocess(im) for im in items[s:s + batch_size]]).to(encoder.device)
        X, f, b = _repair_batch(model, rep, features, x)
        out.append(X)
        fired.append(f)
        boxes += b
    d = getattr(encoder, "dim", 0)
    X = np.concatenate(out) if out else np.zeros((0, d), np.float32)
    size = int(getattr(encoder, "image_size", 0))
    return X, {"fired": np.concatenate(fired) if fired else np.zeros(0, bool), "boxes": boxes, "size": size}


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype == np.uint8:
        return list(images)
    if hasattr(images, "convert") or (isinstance(images, np.ndarray) and images.ndim == 2):
        return [images]
    return list(images)


def _pool(t: Any) -> Any:
    return t.mean((2, 3))


def _border_median(t: Any) -> Any:
    """Per image and channel, the median of the border (first/last rows and columns): (B, C, 1, 1)."""
    import torch

    border = torch.cat([t[:, :, 0], t[:, :, -1], t[:, :, 1:-1, 0], t[:, :, 1:-1, -1]], 2)
    return border.median(2).values[:, :, None, None]


def _score(model: Any, rep: dict[str, Any], pooled: Any) -> Any:
    """The concept's score on pooled embeddings, differentiable; a logit for probability concepts."""
    import torch

    dev = pooled.device
    v = torch.as_tensor(np.asarray(rep["vector"], np.float32)[None], device=dev)
    b = torch.as_tensor(np.asarray([rep["intercept"]], np.float32), device=dev)
    a = model.score_concept_vectors_tensor(pooled, v, b)[:, 0]
    if rep.get("probability", False):
        return torch.logit(a.clamp(1e-6, 1 - 1e-6))
    return a


def _threshold(rep: dict[str, Any]) -> float:
    t = float(rep["threshold"])
    return float(np.log(t / (1 - t))) if rep.get("probability", False) else t


def _repair_batch(model: Any, rep: dict[str, Any], features: Any, x: Any
                  ) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int, int, int]]]]:
    import torch

    layer = int(rep.get("layer", DEFAULT_LAYER))
    params = list(features.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:  # gradients for the input of the later stages only, not for the weights
            p.requires_grad_(False)
        with torch.no_grad():
            h0 = features[:layer](x)
        with torch.enable_grad():
            h = h0.detach().clone().requires_grad_(True)
            pooled = _pool(features[layer:](h))
            score = _score(model, rep, pooled)
            t = _threshold(rep)
            fired = (score > t).detach()
            if bool(fired.any()):
                (g,) = torch.autograd.grad(score[fired].sum(), h)
            else:
                g = torch.zeros_like(h)
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
    X = pooled.detach().float().cpu().numpy()
    fired_np = fired.cpu().numpy()
    boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in range(len(x))]
    idx = np.flatnonzero(fired_np)
    if not len(idx):
        return X, fired_np, boxes
    ref = _border_median(h0)
    evidence = (g * (h0 - ref)).sum(1).detach().float().cpu().numpy()  # (B, gh, gw): predicted drop per cell
    need = (score.detach().float().cpu().numpy() - t)
    gh, gw = evidence.shape[1:]
    S = x.shape[-1]
    cells = {}
    for i in idx:
        e = evidence[i].ravel()
        order = np.argsort(-e)
        chosen, total = [], 0.0
        for c in order[: int(rep["max_cells"])]:
            if e[c] <= 0 and chosen:
                break
            chosen.append(int(c))
            total += float(e[c])
            if total >= need[i]:
                break
        cells[int(i)] = [divmod(c, gw) for c in chosen]
        ch, cw = x.shape[-2] / gh, S / gw
        m = float(rep["margin"])
        boxes[i] = [(max(0, int(np.floor((r - m) * ch))), max(0, int(np.floor((c - m) * cw))),
                     min(x.shape[-2], int(np.ceil((r + 1 + m) * ch))), min(S, int(np.ceil((c + 1 + m) * cw))))
                    for r, c in cells[int(i)]]
    with torch.inference_mode():
        if rep["method"] == "tokens":
            h1 = h0[idx].clone()
            for n, i in enumerate(idx):
                for r, c in cells[int(i)]:
                    h1[n, :, r, c] = ref[i, :, 0, 0]
            new = _pool(features[layer:](h1))
        else:
            x1 = x[idx].clone()
            fill = _border_median(x1)
            for n, i in enumerate(idx):
                for top, left, bottom, right in boxes[i]:
                    x1[n, :, top:bottom, left:right] = fill[n]
            new = _pool(features(x1))
    X[idx] = new.float().cpu().numpy()
    return X, fired_np, boxes


__all__ = ["DEFAULT_LAYER", "METHODS", "SourceRepairError", "describe", "embed_for_model", "from_tensors",
           "model_embeddings", "repair_images", "require_images", "source_repair", "to_tensors"]
