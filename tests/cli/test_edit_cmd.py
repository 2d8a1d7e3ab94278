"""`cbm edit` and `cbm explain`: preview, log, undo/redo, save and diff from the command line."""

import numpy as np
import pytest

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.io import list_versions, load_model, save_model
from cbm.models import create_model


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=300, dim=32, random_state=0)


@pytest.fixture(scope="module")
def template(world, tmp_path_factory):
    names = np.asarray(world.class_names)
    model = create_model("labo", concepts=world.bank, max_epochs=60).fit(world["train"].X, names[world["train"].y])
    path = tmp_path_factory.mktemp("cli") / "m"
    save_model(model, path, fingerprints={"encoder": world.encoder_fingerprint})
    world.save_npz(path / "data.npz")
    return path


@pytest.fixture
def model_dir(template, tmp_path):
    import shutil

    return shutil.copytree(template, tmp_path / "m")


def test_prune_previews_applies_undoes_saves_and_diffs(model_dir, world, capsys):
    spurious, cls = world.bank.names[world.spurious_index], world.class_names[world.spurious_class]
    m = str(model_dir)
    assert main(["edit", m, "prune", "--class", cls, "--concept", spurious, "--eval-on", "test,shifted",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "shifted: accuracy" in out and "dry run" in out and "val:" not in out
    assert main(["edit", m, "prune", "--class", cls, "--concept", spurious, "--why", "spurious"]) == 0
    assert "applied as unsaved edit #1" in capsys.readouterr().out
    assert main(["edit", m, "history"]) == 0
    assert "spurious" in capsys.readouterr().out
    assert main(["edit", m, "undo"]) == 0 and main(["edit", m, "redo"]) == 0
    assert main(["edit", m, "save", "--note", "no water"]) == 0
    assert list_versions(model_dir) == [1, 2]
    assert load_model(model_dir).coef_[load_model(model_dir).class_names_.index(cls), -1] == 0
    capsys.readouterr()
    assert main(["edit", m, "diff", "1", "2"]) == 0
    assert f"{cls} / {spurious}" in capsys.readouterr().out


def test_suggest_names_the_spurious_concept(model_dir, world, capsys):
    assert main(["edit", str(model_dir), "suggest", "--top", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert world.bank.names[world.spurious_index] in first


def test_bad_names_and_empty_undo_fail_with_one_line(model_dir, capsys):
    assert main(["edit", str(model_dir), "prune", "--class", "cardinal", "--concept", "red crwn"]) == 2
    assert "Did you mean 'red crown'" in capsys.readouterr().err
    assert main(["edit", str(model_dir), "undo"]) == 2
    assert "Nothing to undo" in capsys.readouterr().err


def test_explain_a_sample_and_refuse_an_image_without_a_known_encoder(model_dir, tmp_path, capsys):
    assert main(["explain", str(model_dir), "--sample", "3", "--split", "shifted"]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "margin" in out and "true class" in out
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    assert main(["explain", str(model_dir), "--image", str(tmp_path / "x.png")]) == 2
    assert "encoder" in capsys.readouterr().err
