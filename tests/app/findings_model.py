"""A small multi-label model directory for the app tests: the synthetic findings world
(``tests/findings_world.py``), a PCBM with one sigmoid per finding, and data.npz with 0/1 finding
rows, thumbnails and, at the end of the test split, a few scans unlike the training ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from findings_world import FINDINGS, world

from cbm.io import save_model
from cbm.models import create_model
from cbm.models.multilabel import MultiLabelCBM

#: Rows at the end of the test split made of noise directions only: the out-of-distribution score flags them.
N_ODD = 3


def _thumbnails(Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 uint8 images: noise plus one bright band per finding present."""
    img = rng.integers(0, 60, (len(Y), 28, 28), dtype=np.uint8)
    for k in range(Y.shape[1]):
        img[Y[:, k] == 1, 4 + 8 * k:8 + 8 * k, :] += 150
    return img


def build_findings_dir(path: Path) -> Path:
    """Write a fitted multi-label PCBM and its evaluation data (train, val, test) to ``path``."""
    X, Y, bank = world(400, 1)
    model = MultiLabelCBM(create_model("pcbm", concepts=bank), finding_names=FINDINGS).fit(X, Y)
    save_model(model, path, note="multi-label app test fixture",
               fingerprints={"encoder": {"name": "synthetic", "image_size": 28}})
    rng = np.random.default_rng(0)
    arrays = {"class_names": np.asarray(FINDINGS)}
    for split, n, seed in (("train", 400, 1), ("val", 120, 2), ("test", 60, 3)):
        X, Y, _ = world(n, seed)
        if split == "test":
            basis, _ = np.linalg.qr(np.concatenate([bank.vectors.T, np.eye(X.shape[1])[:, :20]], 1))
            X[-N_ODD:] = 3 * basis[:, len(bank):len(bank) + N_ODD].T
        arrays |= {f"X_{split}": X, f"y_{split}": Y, f"images_{split}": _thumbnails(Y, rng),
                   f"ids_{split}": np.asarray([f"scan-{split}-{i:03d}" for i in range(n)])}
    np.savez(path / "data.npz", **arrays)
    return path
