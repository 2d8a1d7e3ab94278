"""Explanations of images: embedding a new image with the model's encoder, where in an image a
concept fires (occlusion), and a token model's concept maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbm.encoders.rebuild import encoder_for
from cbm.explain._inputs import concept_index


def occlusion_map(model: Any, image: Any, concept: int | str, encoder: Any = None, *, patch: int | None = None,
                  stride: int | None = None, fill: int | None = None, batch: int = 64) -> np.ndarray:
    """Where in ``image`` concept ``concept`` fires: the drop in its activation when a patch is hidden.

    The image (PIL, uint8 array or path) is re-encoded with grey patches (``fill``, default the
    image's mean) over a grid (``patch`` pixels, default 1/4 of the side; ``stride`` default patch/2)
    with the model's encoder (:func:`encoder_for`) and scored with the concept's predictor. Returns
    an (H, W) float array: positive where hiding a region lowers the concept, so it fires there.
    Works for any backbone; costs one encoder pass per patch position.
    """
    from PIL import Image

    from cbm._images import to_rgb

    if isinstance(image, str | Path):
        from cbm.data.images import read_image

        image = read_image(image)
    arr = np.asarray(to_rgb(image), np.uint8)
    h, w = arr.shape[:2]
    j = concept_index(model, concept)
    encoder = encoder_for(model) if encoder is None else encoder
    patch = max(1, int(patch or max(h, w) // 4))
    stride = max(1, int(stride or max(1, patch // 2)))
    value = np.uint8(arr.mean() if fill is None else fill)
    boxes, images = [], []
    for top in range(0, max(1, h - patch + stride), stride):
        for left in range(0, max(1, w - patch + stride), stride):
            im = arr.copy()
            im[top:top + patch, left:left + patch] = value
            boxes.append((top, left))
            images.append(Image.fromarray(im))
    base = model.transform(np.asarray(encoder.encode_images([Image.fromarray(arr)]), np.float32))[0, j]
    scores = []
    for s in range(0, len(images), batch):
        X = np.asarray(encoder.encode_images(images[s:s + batch]), np.float32)
        scores.append(model.transform(X)[:, j])
    drop = base - np.concatenate(scores)
    heat, count = np.zeros((h, w), np.float64), np.zeros((h, w), np.float64)
    for (top, left), d in zip(boxes, drop, strict=True):
        heat[top:top + patch, left:left + patch] += d
        count[top:top + patch, left:left + patch] += 1
    return (heat / np.maximum(count, 1)).astype(np.float32)



def embed_image(model: Any, image: Any, encoder: Any = None, max_pixels: int | None = None) -> np.ndarray:
    """Embed one image (a path, PIL image or uint8 array) with the model's recorded encoder: (1, d).

    A path is read by :func:`cbm.data.images.read_image` (pixel cap ``max_pixels``, the same
    conversions as ``cbm embed``). Pass ``encoder`` (from :func:`encoder_for`) to reuse one. A model
    with a source repair (:class:`~cbm.edits.NeutraliseAtSource`) gets it applied
    (:func:`cbm.models.source_repair.embed_for_model`).
    """
    from cbm.models.source_repair import embed_for_model, source_repair

    if isinstance(image, str | Path):
        from cbm.data.images import read_image

        image = read_image(image, max_pixels=max_pixels)
    encoder = encoder_for(model) if encoder is None else encoder
    if source_repair(model) is not None:
        return embed_for_model(model, [image], encoder)
    Z = np.asarray(encoder.encode_images([image]), np.float32)
    return Z if Z.ndim == 3 else Z.reshape(1, -1)  # (1, T, d) patch tokens for token models


def concept_map(model: Any, X: Any = None, *, image: Any = None, encoder: Any = None) -> np.ndarray:
    """Spatial concept attention maps (N, M, h, w) of a token model (``cct``), for patch tokens ``X``
    or one ``image`` (embedded with the model's recorded encoder, or ``encoder``).

    Draw one over its image with :func:`cbm.concept_maps.overlay`.
    """
    from cbm.concept_maps import concept_map as _maps

    if (X is None) == (image is None):
        raise ValueError("Pass patch tokens X or one image, not both.")
    return _maps(model, embed_image(model, image, encoder) if image is not None else X)
