"""Models fitted on a synthetic concept world (``cbm.data.make_concept_world``) and saved as model
directories, for the tests of what happens to a model and its directory: edits, their history and
audit trail, the CLI, concurrent processes and hostile files."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from cbm.io import save_model
from cbm.models import create_model


@contextlib.contextmanager
def one_torch_thread():
    """Torch on one thread inside the block, restored after: on tiny problems thread hand-offs cost
    more than they save, and the CPU is shared (module fixtures run before the ``one_thread`` fixture)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def fit_on_world(world, method: str = "labo", **params):
    """``method`` on the world's concept bank, fitted on its train split with class names as labels."""
    names = np.asarray(world.class_names)
    return create_model(method, concepts=world.bank, **params).fit(world["train"].X, names[world["train"].y])


def save_on_world(world, path: Path, method: str = "labo", *, note: str = "", with_data: bool = False,
                  **params) -> Path:
    """``fit_on_world`` saved as the model directory ``path``; returns ``path``.

    ``with_data``: as ``cbm train`` saves it, with the world's encoder fingerprint and its splits as
    ``data.npz`` (the evaluation data that ``cbm edit`` and the app read).
    """
    fingerprints = {"encoder": world.encoder_fingerprint} if with_data else None
    save_model(fit_on_world(world, method, **params), path, note=note, fingerprints=fingerprints)
    if with_data:
        world.save_npz(path / "data.npz")
    return path
