"""Spatial concept explanations: where in an image each concept is, and how faithful that is.

Token models (``cct``) attend from every patch token to every concept; their maps are (N, M, h, w)::

    from cbm.concept_maps import concept_map, overlay, patch_mask, pointing_game
    maps = concept_map(model, images, encoder=enc)          # or concept_map(model, tokens)
    rgb = overlay(image, maps[0, j])                         # heat map over the image, uint8 RGB
    region = patch_mask((1, 1, 7, 7), image_shape=(28, 28), grid=maps.shape[-2:])
    pointing_game(maps[:, j], region)                        # share of maps peaking in the region
"""

from __future__ import annotations

from typing import Any

import numpy as np


def concept_map(model: Any, X: Any, encoder: Any = None) -> np.ndarray:
    """Spatial concept attention (N, M, h, w) of ``model`` for tokens ``X`` (N, T, d), or for images
    when ``encoder`` is given (embedded with ``encoder.encode_tokens``)."""
    if not hasattr(model, "concept_maps"):
        raise TypeError(f"{type(model).__name__} scores one pooled embedding per image, so it has no "
                        "spatial concept maps; train a token model (cbm train --method cct).")
    if encoder is not None:
        X = encoder.encode_tokens(X)
    return model.concept_maps(X)


def patch_mask(box: tuple[int, int, int, int], image_shape: tuple[int, int],
               grid: tuple[int, int]) -> np.ndarray:
    """Boolean (h, w): the patches of a ``grid`` over an image of ``image_shape`` (H, W) that overlap
    the pixel box ``(top, left, bottom, right)`` (bottom/right exclusive)."""
    top, left, bottom, right = box
    H, W = image_shape
    h, w = int(grid[0]), int(grid[1])
    rows = (np.arange(h) + 1) * H / h > top
    rows &= np.arange(h) * H / h < bottom
    cols = (np.arange(w) + 1) * W / w > left
    cols &= np.arange(w) * W / w < right
    return rows[:, None] & cols[None, :]


def region_mass(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Share of each map's total attention that falls in ``region`` (maps (N, h, w) -> (N,))."""
    maps = np.asarray(maps, np.float64)
    total = maps.sum(axis=(-2, -1))
    return maps[..., region].sum(-1) / np.where(total > 0, total, 1.0)


def region_contrast(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Mean attention per patch inside ``region`` over the mean per patch outside it (N,)."""
    maps = np.asarray(maps, np.float64)
    inside, outside = maps[..., region].mean(-1), maps[..., ~region].mean(-1)
    return inside / np.maximum(outside, 1e-12)


def pointing_game(maps: np.ndarray, region: np.ndarray) -> float:
    """Fraction of maps (N, h, w) whose most attended patch lies in ``region``."""
    maps = np.asarray(maps)
    flat = maps.reshape(len(maps), -1).argmax(1)
    return float(region.reshape(-1)[flat].mean()) if len(maps) else float("nan")


def spread(maps: np.ndarray) -> np.ndarray:
    """Normalised entropy of each map (N, h, w) over its patches: 1 = uniform, 0 = one patch."""
    p = np.asarray(maps, np.float64).reshape(len(maps), -1)
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    ent = -(p * np.log(np.maximum(p, 1e-12))).sum(1)
    return ent / np.log(p.shape[1]) if p.shape[1] > 1 else np.zeros(len(p))


def upsample(amap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized to ``size`` (H, W) by bilinear interpolation (float32)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(amap, np.float32))[None, None]
    return F.interpolate(t, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(image: Any, amap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (PIL or array) with ``amap`` (h, w) drawn over it as a red heat map: uint8 (H, W, 3).

    The map is scaled to [0, 1] by its own maximum, so the brightest red is the most attended patch.
    """
    from cbm._images import to_rgb

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    rgb = np.asarray(to_rgb(image), np.float32)
    heat = upsample(amap, rgb.shape[:2])
    heat = np.clip(heat / max(float(heat.max()), 1e-12), 0, 1)[..., None]
    red = np.array([255.0, 40.0, 0.0], np.float32)
    out = rgb * (1 - alpha * heat) + red * (alpha * heat)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
