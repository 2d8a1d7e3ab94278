"""A user's own images with a manifest that names each image's split and site: `cbm embed` keeps
both columns, `cbm train --data CACHE` honours them (train / val / held-out test per site, saved in
MODEL_DIR/data.npz with the encoder), and `cbm eval` reports accuracy and per-class recall per split
and site, naming the training split and its sites instead of guessing which is in-domain.

The images and the tiny local CLIP checkpoint are the `own_data` fixture's (tests/cli/conftest.py).
"""

import contextlib
import csv
import io
import json

import numpy as np
import pytest
from own_data import ARCH, CLASSES

from cbm.cli import main
from cbm.data.evalfile import load_eval_data, read_arrays
from cbm.io import load_model

#: Per class, image i goes to (split, site): sites A and B in train, C only held out (a new site).
LAYOUT = {0: ("train", "siteA"), 1: ("train", "siteA"), 2: ("train", "siteA"), 3: ("train", "siteB"),
          4: ("val", "siteA"), 5: ("test", "siteA"), 6: ("test", "siteA"), 7: ("test", "siteB"),
          8: ("test", "siteC"), 9: ("test", "siteC")}


def cli(argv) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``cbm ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def ok(argv) -> tuple[str, str]:
    rc, out, err = cli(argv)
    assert rc == 0, err
    return out, err


def write_manifest(path, with_split: bool = True, site_column: str = "site") -> list[dict[str, str]]:
    rows = [{"path": f"photos/{cls}/{i}.png", "label": cls, "split": split, site_column: site}
            for cls in CLASSES for i, (split, site) in LAYOUT.items()]
    fields = ["path", "label", *(["split"] if with_split else []), site_column]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def embed(root, manifest, ckpt, cache) -> tuple[str, object]:
    out, _ = ok(["embed", manifest, "--encoder", ARCH, "--pretrained", ckpt, "--cache-dir", cache,
                 "--device", "cpu", "--no-progress"])
    entry = next((cache / "embeddings").iterdir())
    return out, entry


@pytest.fixture(scope="module")
def trained(own_data, tmp_path_factory):
    """The manifest embedded, a linear probe trained on it: paths, manifest rows and both commands' output."""
    root, ckpt = own_data
    work = tmp_path_factory.mktemp("splits")
    manifest = root / "manifest-splits.csv"
    rows = write_manifest(manifest)
    embed_out, entry = embed(root, manifest, ckpt, work / "cache")
    train_out, train_err = ok(["train", "--method", "linear-probe", "--data", entry, "--out", work / "model",
                               "--quiet"])
    return {"root": root, "ckpt": ckpt, "work": work, "rows": rows, "entry": entry, "model": work / "model",
            "embed_out": embed_out, "train_out": train_out, "train_err": train_err}


def ids_of(rows, split, site=None):
    return {r["path"] for r in rows if r["split"] == split and (site is None or r["site"] == site)}


def test_embed_keeps_the_split_and_site_columns(trained):
    from cbm.store import EmbeddingCache

    cache = EmbeddingCache(trained["entry"])
    by_id = {r["path"]: r for r in trained["rows"]}
    assert [by_id[i]["split"] for i in cache.ids] == cache.splits
    assert [by_id[i]["site"] for i in cache.ids] == cache.domains
    assert "kept per image: split (train 12, val 3, test 15) and site (siteA, siteB, siteC)" in trained["embed_out"]


def test_train_honours_the_manifest_splits_and_says_nothing_of_a_random_split(trained):
    data = load_eval_data(trained["model"] / "data.npz")
    assert set(data) == {"train", "val", "test@siteA", "test@siteB", "test@siteC"}
    assert set(data["train"]["ids"]) == ids_of(trained["rows"], "train")
    assert set(data["val"]["ids"]) == ids_of(trained["rows"], "val")
    for site in ("siteA", "siteB", "siteC"):
        assert set(data[f"test@{site}"]["ids"]) == ids_of(trained["rows"], "test", site)
        assert set(data[f"test@{site}"]["domains"]) == {site}
    assert sorted(set(data["train"]["domains"])) == ["siteA", "siteB"]  # train keeps every site's rows
    assert set(data["train"]["y"]) == set(CLASSES)
    assert "random" not in trained["train_err"]


def test_the_model_records_the_caches_encoder_and_its_training_sites(trained):
    model = load_model(trained["model"])
    enc = model.fingerprints_["encoder"]
    assert enc["name"] == ARCH and enc["pretrained"] == str(trained["ckpt"].resolve())
    assert model.fingerprints_["splits"]["source"] == "manifest"
    assert model.fingerprints_["splits"]["train_sites"] == ["siteA", "siteB"]
    config = json.loads(next(trained["model"].glob("v*/config.json")).read_text())
    assert config["fingerprints"]["encoder"] == enc
    arrays = read_arrays(trained["model"] / "data.npz")
    assert json.loads(str(arrays["encoder_spec"])) == enc and str(arrays["encoder"]) == enc["fingerprint"]


def test_refitting_edits_find_train_and_val_in_data_npz(trained):
    from cbm.edits import TrainingData

    data = TrainingData.for_model(load_model(trained["model"]))
    assert len(data.y) == len(ids_of(trained["rows"], "train")) and len(data.y_val) == 3


@pytest.fixture(scope="module")
def evaluated(trained):
    """`cbm eval MODEL_DIR --json FILE`: (stdout, the JSON metrics)."""
    out, _ = ok(["eval", trained["model"], "--json", trained["work"] / "metrics.json"])
    return out, json.loads((trained["work"] / "metrics.json").read_text())


def test_eval_prints_recall_per_class_per_site_and_names_the_training_split(evaluated):
    out, _ = evaluated
    assert "training split: 'train' (sites siteA, siteB)" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if "recall:" in ln and ln.split()[0].startswith("test@")}
    assert set(lines) == {"test@siteA", "test@siteB", "test@siteC"}
    for cls in CLASSES:
        assert f"{cls} " in lines["test@siteC"]
    assert "in-domain = the training site(s) siteA, siteB" in out and "OOD (site(s) siteC)" in out
    assert "in-domain 'siteC'" not in out  # never the biggest site by guess


def test_eval_json_has_the_same_and_recall_is_each_class_share_predicted_right(trained, evaluated):
    _, metrics = evaluated
    assert metrics["sites"]["training"] == {"split": "train", "sites": ["siteA", "siteB"]}
    assert metrics["domains"]["out_of_domain_sites"] == ["siteC"]
    assert metrics["domains"]["held_out_splits"] == ["test@siteA", "test@siteB", "test@siteC"]
    data = load_eval_data(trained["model"] / "data.npz")["test@siteC"]
    pred = load_model(trained["model"]).predict(data["X"])
    recall = metrics["sites"]["splits"]["test@siteC"]["sites"]["siteC"]["recall"]
    assert set(recall) == set(CLASSES)
    for cls, r in recall.items():
        assert r == pytest.approx(float(np.mean(pred[data["y"] == cls] == cls)))


def test_group_column_without_split_is_split_at_random_and_says_so(own_data, tmp_path):
    root, ckpt = own_data
    manifest = root / "manifest-nosplit.csv"
    write_manifest(manifest, with_split=False, site_column="group")
    _, entry = embed(root, manifest, ckpt, tmp_path / "cache")
    _, err = ok(["train", "--method", "linear-probe", "--data", entry, "--out", tmp_path / "m", "--quiet"])
    assert "has no split column" in err and "60/20/20" in err and "at random" in err
    names = set(load_eval_data(tmp_path / "m" / "data.npz"))
    assert {"train", "val"} <= names and names - {"train", "val"} <= {f"test@site{s}" for s in "ABC"}
    assert load_model(tmp_path / "m").fingerprints_["splits"]["source"] == "random"


def test_npz_with_encoder_spec_records_it_and_one_without_says_explain_needs_encoder(trained, tmp_path):
    data = trained["model"] / "data.npz"
    _, err = ok(["train", "--method", "linear-probe", "--data", data, "--out", tmp_path / "again", "--quiet"])
    assert "--encoder" not in err
    assert load_model(tmp_path / "again").fingerprints_["encoder"] == load_model(trained["model"]).fingerprints_["encoder"]

    arrays = {k: v for k, v in read_arrays(data).items() if k not in ("encoder", "encoder_spec")}
    np.savez(tmp_path / "bare.npz", **arrays)
    _, err = ok(["train", "--method", "linear-probe", "--data", tmp_path / "bare.npz", "--out", tmp_path / "bare",
                 "--quiet"])
    assert "records no image encoder" in err and "cbm explain --image` will need --encoder" in err
    image = trained["root"] / "photos" / CLASSES[0] / "8.png"
    rc, _, err = cli(["explain", tmp_path / "bare", "--image", image])
    assert rc == 2 and "--encoder NAME" in err
    out, _ = ok(["explain", tmp_path / "bare", "--image", image, "--encoder", ARCH, "--pretrained", trained["ckpt"]])
    assert "predicted" in out


def test_an_edit_from_example_images_reads_the_train_split_cbm_train_saved(trained):
    root, work = trained["root"], trained["work"]
    ok(["concepts", "generate", "--source", "labo", "--input", root / "concepts.json", "--encoder", ARCH,
        "--pretrained", trained["ckpt"], "--out", work / "bank"])
    ok(["train", "--method", "labo", "--concepts", work / "bank", "--data", trained["entry"], "--out", work / "labo",
        "--param", "max_epochs=2", "--quiet"])
    site_b = ",".join(sorted(ids_of(trained["rows"], "train", "siteB")))  # rows of data.npz's train split, by id
    site_a = ",".join(sorted(ids_of(trained["rows"], "train", "siteA")))
    ok(["edit", work / "labo", "add-concept", "--name", "site B look", "--positives", site_b, "--negatives", site_a,
        "--weight", "0"])
    history, _ = ok(["edit", work / "labo", "history"])
    assert "add-concept" in history and "site B look" in history
