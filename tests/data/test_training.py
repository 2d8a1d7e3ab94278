"""load_training_data: every source gives labels as class names, and the encoder that embedded them."""

import json

import numpy as np
import pytest

from cbm.data import load_training_data, make_concept_world
from cbm.exceptions import DataError


def test_synthetic_world_labels_are_its_class_names():
    world = make_concept_world(random_state=0)
    splits, extras = load_training_data("synthetic")
    np.testing.assert_array_equal(splits["test"]["y"], np.asarray(world.class_names)[world["test"].y])
    assert extras["bank"].classes == world.class_names
    order = np.argsort(world.class_names)  # class embeddings follow sorted names, like classes_
    np.testing.assert_array_equal(extras["class_embeddings"], world.class_embeddings[order])


def test_npz_integer_labels_are_decoded_through_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", X_train=np.ones((3, 2)), y_train=np.array([1, 0, 1]),
             class_names=np.array(["chemise à manches", "robe"]))
    splits, extras = load_training_data(tmp_path / "d.npz")
    assert splits["train"]["y"].tolist() == ["robe", "chemise à manches", "robe"]
    np.savez(tmp_path / "bad.npz", X_train=np.ones((1, 2)), y_train=np.array([5]), class_names=np.array(["a"]))
    with pytest.raises(DataError, match="only 1 names"):
        load_training_data(tmp_path / "bad.npz")


def test_evaluation_data_without_a_train_split_loads_when_asked(tmp_path):
    np.savez(tmp_path / "eval.npz", X_test=np.ones((2, 2)), y_test=np.array(["a", "b"]))
    with pytest.raises(DataError, match="no X_train"):
        load_training_data(tmp_path / "eval.npz")
    splits, _ = load_training_data(tmp_path / "eval.npz", require_train=False)
    assert list(splits) == ["test"]


def test_embedding_cache_labels_are_the_datasets_class_names(tmp_path):
    from cbm.data import ImageDataset
    from cbm.store import EmbeddingStore

    images = np.random.default_rng(0).integers(0, 255, (20, 8, 8), dtype=np.uint8)
    ds = ImageDataset(images=images, labels=np.arange(20) % 2, classes=["pantalon", "été"])

    class Flat:
        name, fingerprint, dim = "flat", "flat-64", 64
        spec = {"name": "flat", "pretrained": None, "fingerprint": "flat-64"}

        def encode_images(self, imgs, batch_size=64):
            return np.stack([np.asarray(i, np.float32).reshape(-1) for i in imgs])

    path = EmbeddingStore(tmp_path).get_or_compute(Flat(), ds, progress=False).path
    splits, extras = load_training_data(path)
    assert set(splits["train"]["y"].tolist()) == {"pantalon", "été"}
    assert extras["fingerprint"] == "flat-64" and extras["encoder"] == Flat.spec


def test_fit_arguments_pass_only_the_extras_a_method_takes():
    from cbm.data.training import fit_arguments
    from cbm.models import create_model

    splits, extras = load_training_data("synthetic")
    labo = fit_arguments(create_model("labo"), splits, extras)
    assert set(labo) == {"X_val", "y_val"} and labo["X_val"] is splits["val"]["X"]
    assert set(fit_arguments(create_model("knobo"), splits, extras)) == {"X_val", "y_val", "concept_labels"}
    assert set(fit_arguments(create_model("cms"), splits, extras)) == {"class_embeddings"}
    assert fit_arguments(create_model("pcbm"), splits, extras) == {}


def test_an_unreadable_npz_gets_one_message_naming_the_option(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="--data .*broken.npz.* cannot be read as a .npz file"):
        load_training_data(bad)


def test_embeddings_npz_decodes_integer_labels(tmp_path):
    from cbm.data.training import read_embeddings

    np.savez(tmp_path / "e.npz", X=np.ones((2, 3), np.float32), y=np.array([1, 0]), class_names=["a", "b"])
    X, y, fp = read_embeddings(tmp_path / "e.npz")
    assert X.shape == (2, 3) and y.tolist() == ["b", "a"] and fp is None


def _flat_cache(tmp_path, splits=None, domains=None):
    """An embedding cache of 12 labelled 8x8 images with the given split and site per image."""
    from cbm.data import ImageDataset
    from cbm.store import EmbeddingStore

    images = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    ds = ImageDataset(images=images, labels=np.arange(12) % 2, classes=["a", "b"], splits=splits, domains=domains)

    class Flat:
        name, fingerprint, dim = "flat", "flat-64", 64

        def encode_images(self, imgs, batch_size=64):
            return np.stack([np.asarray(i, np.float32).reshape(-1) for i in imgs])

    return EmbeddingStore(tmp_path).get_or_compute(Flat(), ds, progress=False).path


def test_cache_splits_follow_the_manifest_names_and_held_out_ones_are_divided_by_site(tmp_path):
    names = ["Training"] * 6 + ["validation"] * 2 + ["test"] * 4  # aliases read as train / val
    sites = ["A"] * 8 + ["A", "B", "B", "B"]
    splits, extras = load_training_data(_flat_cache(tmp_path, names, sites))
    assert list(splits) == ["train", "val", "test@A", "test@B"]
    assert [len(s["y"]) for s in splits.values()] == [6, 2, 1, 3]
    assert splits["train"]["ids"].tolist() == [str(i) for i in range(6)]
    assert extras["splits"]["source"] == "manifest" and extras["splits"]["train_sites"] == ["A"]


def test_cache_split_errors_name_the_cache_and_the_fix(tmp_path):
    with pytest.raises(DataError, match="names no 'train' rows"):
        load_training_data(_flat_cache(tmp_path / "1", ["val"] * 6 + ["test"] * 6))
    with pytest.raises(DataError, match="1 row.* have no split .*give every manifest row a split"):
        load_training_data(_flat_cache(tmp_path / "2", ["train"] * 11 + [""]))
    with pytest.raises(DataError, match="have no site"):
        load_training_data(_flat_cache(tmp_path / "3", ["train"] * 12, ["A"] * 11 + [""]))


def test_a_cache_without_a_split_column_is_split_at_random_and_the_note_says_so(tmp_path):
    from cbm.data.training import split_note

    path = _flat_cache(tmp_path)
    splits, extras = load_training_data(path)
    assert list(splits) == ["train", "val", "test"] and extras["splits"]["source"] == "random"
    assert "no split column" in split_note(path, extras) and "60/20/20" in split_note(path, extras)
    assert split_note("synthetic", load_training_data("synthetic")[1]) is None


def test_npz_encoder_spec_is_the_encoder_record(tmp_path):
    spec = {"name": "mobilenet_v2", "pretrained": None, "fingerprint": "mobilenet_v2|size=96"}
    arrays = {"X_train": np.ones((2, 2)), "y_train": np.array(["a", "b"])}
    np.savez(tmp_path / "d.npz", encoder_spec=json.dumps(spec), **arrays)
    _, extras = load_training_data(tmp_path / "d.npz")
    assert extras["encoder"] == spec and extras["fingerprint"] == spec["fingerprint"]
    np.savez(tmp_path / "two.npz", encoder_spec=json.dumps(spec), encoder="other|size=1", **arrays)
    with pytest.raises(DataError, match="names two encoders"):
        load_training_data(tmp_path / "two.npz")
    np.savez(tmp_path / "bad.npz", encoder_spec="{not json", **arrays)
    with pytest.raises(DataError, match="'encoder_spec' that is not JSON"):
        load_training_data(tmp_path / "bad.npz")
