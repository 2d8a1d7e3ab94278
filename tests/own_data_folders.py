"""A user's own image folder with a shortcut nobody named, for the end-to-end CLI and browser tests.

Fashion-MNIST PNGs in class folders with a ``manifest.csv`` (path, label, split, site): train / val /
test at site "A", test at site "B"; a bright bar across the lower body on most images of class ``k`` at
site A and on most other images at site B; and the demo's garment bank without any artifact concept.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

#: (split, site, images) of the folder, in order.
PLAN = (("train", "A", 300), ("val", "A", 100), ("test", "A", 100), ("test", "B", 100))


def run_cli(argv) -> str:
    """Run ``cbm ARGV`` in this process and return its stdout; fail with its stderr unless it exits 0."""
    import contextlib
    import io

    from cbm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    assert rc == 0, err.getvalue()
    return out.getvalue()


def stripe(img: np.ndarray) -> np.ndarray:
    """``img`` with a bright bar across the lower body (not a concept in the bank)."""
    out = img.copy()
    out[22:25, 3:25] = 255
    return out


def write_stripe_folder(root: Path, k: str, seed: int = 0) -> Path:
    """Write the folder, its manifest and the concept bank (``root/bank``) under ``root``; the
    manifest's path. Skips the calling test when Fashion-MNIST is not installed."""
    from PIL import Image

    from cbm.data import load_fashion_mnist
    from cbm.demo.garments import CLASSES, garment_concept_bank
    from cbm.exceptions import DataError

    try:
        ds = load_fashion_mnist("train", limit=sum(n for *_, n in PLAN))
    except DataError as e:
        pytest.skip(f"Fashion-MNIST is not installed here ({e})")
    rng = np.random.default_rng(seed)
    names = np.asarray(CLASSES)[np.asarray(ds.labels)]
    order = rng.permutation(len(names))
    rows, start = [], 0
    for split, site, n in PLAN:
        for i in order[start:start + n]:
            rate = (0.9 if names[i] == k else 0.05) if site == "A" else (0.0 if names[i] == k else 0.7)
            img = np.asarray(ds.images[i], np.uint8)
            img = stripe(img) if rng.random() < rate else img
            path = root / "images" / names[i] / f"{split}-{site}-{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
            rows.append({"path": str(path), "label": names[i], "split": split, "site": site})
        start += n
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "split", "site"])
        w.writeheader()
        w.writerows(rows)
    garment_concept_bank(include_artifact=False, measured=False).save(root / "bank")
    return manifest
