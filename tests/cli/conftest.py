"""Shared CLI fixtures: the synthetic concept world's files; a user's own image folder (non-ASCII
class names), a local open_clip checkpoint, a LaBo concept file, and the model the "Your own data"
commands (docs/own-data.md) make of them."""

import json
from pathlib import Path

import numpy as np
import pytest
from own_data import ARCH, CLASSES, CONCEPTS, run_cli
from PIL import Image


@pytest.fixture(scope="session")
def world_files(tmp_path_factory):
    """(world, root): the default concept world as ``cbm train`` reads it: root/splits.npz, its
    concept bank root/bank, and root/bank-reordered (the same bank, classes in the reverse order)."""
    from cbm.data import make_concept_world

    root = tmp_path_factory.mktemp("world")
    world = make_concept_world(random_state=0)
    world.save_npz(root / "splits.npz")
    world.bank.save(root / "bank")
    world.bank.with_prior(world.class_names[::-1], world.bank.prior[::-1]).save(root / "bank-reordered")
    return world, root


@pytest.fixture(scope="session")
def own_data(tmp_path_factory) -> tuple[Path, Path]:
    """(root, checkpoint): root/photos/<class>/<i>.png, root/concepts.json, a tiny CLIP checkpoint."""
    from cbm.encoders import create_encoder

    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(CLASSES):
        (root / "photos" / cls).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            img[:, :, k] += 150  # one colour per class
            Image.fromarray(img).save(root / "photos" / cls / f"{i}.png")
    ckpt = create_encoder(ARCH, device="cpu").save_checkpoint(root / "tiny-clip.safetensors")
    (root / "concepts.json").write_text(json.dumps(CONCEPTS, ensure_ascii=False), encoding="utf-8")
    return root, ckpt


@pytest.fixture(scope="session")
def own_model(own_data) -> dict[str, Path]:
    """The commands of docs/own-data.md, in order: embed, concepts generate --source labo, train --method labo."""
    root, ckpt = own_data
    out = run_cli(["embed", root / "photos", "--encoder", ARCH, "--pretrained", ckpt,
                   "--cache-dir", root / "cache", "--device", "cpu", "--no-progress"])
    entry = next((root / "cache" / "embeddings").iterdir())
    assert str(entry) in out  # the folder `cbm train --data` takes is printed
    run_cli(["concepts", "generate", "--source", "labo", "--input", root / "concepts.json", "--encoder", ARCH,
             "--pretrained", ckpt, "--out", root / "bank"])
    run_cli(["train", "--method", "labo", "--concepts", root / "bank", "--data", entry,
             "--out", root / "model", "--param", "max_epochs=2", "--quiet"])
    return {"root": root, "checkpoint": ckpt, "embeddings": entry, "bank": root / "bank",
            "model": root / "model"}
