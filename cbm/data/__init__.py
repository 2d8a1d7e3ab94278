"""Datasets and splits: image folders, manifests, Fashion-MNIST, digits, and a synthetic concept world.

Names load lazily from their modules so that ``import cbm.data`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # real images (cbm/data/folders.py, fashion_mnist.py, splits.py)
    "ImageDataset": "cbm.data.folders",
    "image_folder": "cbm.data.folders",
    "read_manifest": "cbm.data.folders",
    "load_fashion_mnist": "cbm.data.fashion_mnist",
    "load_digits_images": "cbm.data.folders",
    "make_splits": "cbm.data.splits",
    # embeddings split for training (cbm/data/training.py)
    "load_training_data": "cbm.data.training",
    # synthetic aligned image/text embeddings with known concept structure (cbm/data/synthetic.py)
    "ConceptWorld": "cbm.data.synthetic",
    "make_concept_world": "cbm.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cbm.data' has no attribute {name!r}")
