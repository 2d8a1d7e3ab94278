"""`cbm discover`: a ranked table of unnamed class-linked groups, candidates.json and pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.edits.discover import load_candidates
from cbm.io import save_model
from cbm.models import create_model


def _images(split, spurious_index: int, rng: np.random.Generator) -> np.ndarray:
    """28x28 thumbnails: noise, with a bright corner tag on the images that show the spurious concept."""
    img = rng.integers(0, 60, (len(split), 28, 28), dtype=np.uint8)
    img[split.concepts[:, spurious_index] > 0, 1:6, 1:6] = 255
    return img


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    """A PCBM whose bank lacks the planted concept, with val/test splits (ids, images, flags) in data.npz."""
    world = make_concept_world(n_classes=4, n_concepts=16, n_samples=1500, dim=48, random_state=1)
    names = np.asarray(world.class_names)
    bank = world.bank.subset(list(range(len(world.bank) - 1)))
    model = create_model("pcbm", concepts=bank).fit(world["train"].X, names[world["train"].y])
    path = tmp_path_factory.mktemp("discover") / "model"
    save_model(model, path, fingerprints={"encoder": {"name": "synthetic", "image_size": 28}})
    rng = np.random.default_rng(0)
    arrays = {"class_names": names}
    for s in ("val", "test"):
        split = world[s]
        arrays.update({f"X_{s}": split.X, f"y_{s}": split.y, f"ids_{s}": np.asarray([f"{s}-{i}" for i in range(len(split))]),
                       f"images_{s}": _images(split, world.spurious_index, rng),
                       f"flags_{s}": split.concepts[:, world.spurious_index]})
    np.savez(path / "data.npz", **arrays)
    return path, world


def test_table_ranks_the_planted_group_first(planted_dir, capsys):
    path, world = planted_dir
    assert main(["discover", str(path), "--top", "3"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "class", "images"]
    first = lines[1].split()
    assert first[0] == "1" and " ".join(first[1:-6]) == world.class_names[world.spurious_class]
    assert len([line for line in lines if line[:4].strip().isdigit()]) <= 3
    assert "searching 300 images of split 'val'" in err  # progress goes to stderr


def test_out_writes_candidates_and_pictures(planted_dir, tmp_path, capsys):
    path, world = planted_dir
    assert main(["discover", str(path), "--top", "3", "--out", str(tmp_path / "found")]) == 0
    out = capsys.readouterr().out
    assert "candidates.json" in out and "candidate-RR.png" in out
    cands = load_candidates(tmp_path / "found" / "candidates.json#1")
    c = cands[0]
    assert c.source["split"] == "val" and c.source["data"] == str((path / "data.npz").resolve())
    with np.load(path / "data.npz") as z:
        flags, ids = z["flags_val"], z["ids_val"]
    assert flags[c.indices].mean() >= 0.8
    pos, neg = c.concept_examples()
    assert c.source["positive_ids"] == ids[pos].tolist() and c.source["negative_ids"] == ids[neg].tolist()
    pictures = sorted(p.name for p in (tmp_path / "found").glob("candidate-*.png"))
    assert pictures == [f"candidate-{r:02d}.png" for r in range(1, len(pictures) + 1)] and pictures
    grid = np.asarray(Image.open(tmp_path / "found" / "candidate-01.png"))
    assert grid.shape[0] > 96 and grid.shape[1] > 96 * 4


def test_json_output_parses(planted_dir, capsys):
    path, world = planted_dir
    assert main(["discover", str(path), "--split", "test", "--top", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["split"] == "test" and 1 <= len(doc["candidates"]) <= 2
    top = doc["candidates"][0]
    assert top["class"] == world.class_names[world.spurious_class]
    assert {"score", "share_in_class", "share_elsewhere", "positives", "negatives", "positive_ids"} <= set(top)


def test_no_images_says_why(planted_dir, tmp_path, capsys):
    path, world = planted_dir
    with np.load(path / "data.npz") as z:
        np.savez(tmp_path / "plain.npz", **{k: z[k] for k in z.files if not k.startswith("images_")})
    assert main(["discover", str(path), "--data", str(tmp_path / "plain.npz"), "--out", str(tmp_path / "o")]) == 0
    assert "has no images_val array, so there are no pictures" in capsys.readouterr().out
    assert (tmp_path / "o" / "candidates.json").is_file() and not list((tmp_path / "o").glob("*.png"))


def test_unknown_split_is_named(planted_dir, capsys):
    path, _ = planted_dir
    assert main(["discover", str(path), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "Unknown split 'train'" in err and "val" in err


def test_bad_top(planted_dir, capsys):
    path, _ = planted_dir
    assert main(["discover", str(path), "--top", "0"]) == 2
    assert "--top must be >= 1; got 0" in capsys.readouterr().err


def test_concepts_bank_gives_what_the_concepts_name(tmp_path, capsys):
    """A saved KnoBo keeps its grounded predictors, which absorb the shortcut; its bank's text vectors do not."""
    world = make_concept_world(n_classes=5, n_concepts=20, n_samples=2000, dim=64, random_state=0)
    names = np.asarray(world.class_names)
    bank = world.bank.subset(list(range(len(world.bank) - 1)))
    model = create_model("knobo", concepts=bank).fit(world["train"].X, names[world["train"].y],
                                                     X_val=world["val"].X, y_val=names[world["val"].y])
    save_model(model, tmp_path / "m")
    bank.save(tmp_path / "bank")
    np.savez(tmp_path / "m" / "data.npz", X_val=world["val"].X, y_val=names[world["val"].y])
    flags = world["val"].concepts[:, world.spurious_index]
    precision = {}
    for extra in ([], ["--concepts", str(tmp_path / "bank")]):
        out = tmp_path / ("with" if extra else "without")
        assert main(["discover", str(tmp_path / "m"), "--top", "1", "--out", str(out), *extra]) == 0
        precision[bool(extra)] = flags[load_candidates(out / "candidates.json")[0].indices].mean()
    capsys.readouterr()
    assert precision[True] >= 0.9 > 0.7 > precision[False]
