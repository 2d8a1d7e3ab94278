"""`cbm train` / `cbm eval`: train on a splits .npz or the synthetic world, save, evaluate."""

import json

import numpy as np
import pytest

from cbm.cli import main
from cbm.cli.train_cmd import parse_params
from cbm.data import load_training_data
from cbm.io import load_metrics, load_model


def test_train_labo_from_npz_saves_model_and_prints_table(world_files, tmp_path, capsys):
    world, root = world_files
    rc = main(["train", "--method", "labo", "--concepts", str(root / "bank"), "--data", str(root / "splits.npz"),
               "--out", str(tmp_path / "m"), "--param", "max_epochs=40", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "shifted" in out and "saved labo" in out
    model = load_model(tmp_path / "m")
    assert model.class_names_ == sorted(world.class_names)  # trained on the npz's class_names
    acc = np.mean(model.predict(world["test"].X) == np.asarray(world.class_names)[world["test"].y])
    assert acc > 0.7
    metrics = load_metrics(tmp_path / "m")
    assert set(metrics["splits"]) >= {"train", "val", "test", "shifted"}


@pytest.mark.slow
def test_sparse_cbm_objective_flag_and_eval(world_files, tmp_path, capsys):
    _, root = world_files
    assert main(["train", "--method", "sparse-cbm", "--objective", "l1", "--world", "--out", str(tmp_path / "s"),
                 "--param", "max_epochs=10", "--quiet"]) == 0
    assert load_model(tmp_path / "s").objective == "l1"
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "s"), "--data", str(root / "splits.npz"),
                 "--json", str(tmp_path / "m.json")]) == 0
    assert "test" in capsys.readouterr().out
    assert "shifted" in json.loads((tmp_path / "m.json").read_text())["splits"]


@pytest.mark.slow
def test_cms_and_knobo_get_their_fit_extras_from_npz(world_files, tmp_path):
    _, root = world_files
    common = ["--concepts", str(root / "bank"), "--data", str(root / "splits.npz"), "--quiet"]
    assert main(["train", "--method", "cms", "--out", str(tmp_path / "c"), *common]) == 0
    assert main(["train", "--method", "knobo", "--out", str(tmp_path / "k"), "--param", "max_epochs=20", *common]) == 0
    knobo = load_model(tmp_path / "k")
    assert "water background" in knobo.concept_names_  # grounded from the npz's concept labels


def test_parse_params_reads_json_values():
    assert parse_params(["lr=0.5", "objective=l1", "batch_size=null"]) == {
        "lr": 0.5, "objective": "l1", "batch_size": None}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(["lr"])


def test_training_data_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_training_data(str(tmp_path / "nope.npz"))
    np.savez(tmp_path / "bad.npz", X_test=np.ones((2, 2)), y_test=np.ones(2))
    with pytest.raises(ValueError, match="no X_train/y_train"):
        load_training_data(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "labo", "--data", "DATA"], "needs --concepts"),
        (["--method", "labo", "--world", "--param", "nonsense=1"], "Unknown parameter"),
        (["--method", "labo", "--world", "--objective", "l1"], "applies to sparse-cbm only"),
    ],
)
def test_user_errors_are_one_line(world_files, tmp_path, capsys, argv, message):
    _, root = world_files
    argv = [a.replace("DATA", str(root / "splits.npz")) for a in argv]
    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_train_from_an_embedding_store_entry(world_files, tmp_path, capsys):
    from cbm.store import EmbeddingStore

    world, root = world_files

    class Rows:  # a "dataset" whose images are already embeddings
        fingerprint, name = "world-rows", "world"
        labels, classes = world["train"].y, world.class_names

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return world["train"].X[i]

    class Identity:
        name, fingerprint, dim = "identity", world.encoder_fingerprint, world["train"].X.shape[1]

        def encode_images(self, images, batch_size=64):
            return np.stack(images)

    entry = EmbeddingStore(tmp_path / "cache").get_or_compute(Identity(), Rows(), progress=False).path
    rc = main(["train", "--method", "cms", "--concepts", str(root / "bank"), "--data", str(entry),
               "--out", str(tmp_path / "m"), "--param", "variant=\"max\"", "--quiet"])
    assert rc == 2 and "class text embeddings" in capsys.readouterr().err  # the cache has none
    rc = main(["train", "--method", "labo", "--concepts", str(root / "bank"), "--data", str(entry),
               "--out", str(tmp_path / "m"), "--param", "max_epochs=20", "--quiet"])
    assert rc == 0
    model = load_model(tmp_path / "m")
    assert model.fingerprints_["encoder"] == world.encoder_fingerprint
    assert model.class_names_ == sorted(world.class_names)  # names kept by the cache


def test_train_writes_evaluation_data_that_edit_and_the_app_read(world_files, tmp_path, capsys):
    from cbm.edits.preview import load_evalsets, npz_splits

    world, root = world_files
    assert main(["train", "--method", "linear-probe", "--data", str(root / "splits.npz"),
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    data = tmp_path / "m" / "data.npz"
    assert set(npz_splits(data)) == {"train", "val", "test", "shifted"}  # train too: refitting edits read it
    evalsets = load_evalsets(load_model(tmp_path / "m"), data)
    assert len(evalsets["test"]) == len(world["test"].y)
