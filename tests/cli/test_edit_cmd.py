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


def test_revert_makes_an_older_version_current_and_says_so(model_dir, world, capsys):
    m, concept = str(model_dir), world.bank.names[0]
    assert main(["edit", m, "set-weight", "--class", world.class_names[0], "--concept", concept,
                 "--value", "4"]) == 0
    assert main(["edit", m, "revert", "1"]) == 2
    assert "unsaved edit(s) are pending" in capsys.readouterr().err
    assert main(["edit", m, "save"]) == 0 and main(["edit", m, "revert", "1"]) == 0
    assert "version 3 is now current: a copy of version 1" in capsys.readouterr().out
    np.testing.assert_array_equal(load_model(model_dir).coef_, load_model(model_dir, 1).coef_)
    assert main(["edit", m, "revert", "7"]) == 2
    assert "no version 7" in capsys.readouterr().err


def test_a_save_after_another_command_saved_is_refused_until_rebased(model_dir, world, capsys):
    m, concept, cls = str(model_dir), world.bank.names[0], world.class_names[0]
    assert main(["edit", m, "set-weight", "--class", cls, "--concept", concept, "--value", "4"]) == 0
    save_model(load_model(model_dir), model_dir, note="cbm train --out")  # another command, in between
    capsys.readouterr()
    assert main(["edit", m, "save"]) == 2
    err = capsys.readouterr().err
    assert "made on version 1, but version 2 is now current" in err and f"cbm edit {m} rebase" in err
    assert main(["edit", m, "rebase"]) == 0 and main(["edit", m, "save"]) == 0
    assert list_versions(model_dir) == [1, 2, 3]
    final = load_model(model_dir)
    assert final.coef_[final.class_names_.index(cls), final.concept_names_.index(concept)] == 4


@pytest.mark.parametrize("args, message", [
    (["set-weight", "--value=1e39"], "1e+39 is too large: weights are float32"),
    (["scale", "--factor=1e308"], "1e+308 is too large"),
    (["scale", "--factor=1e38"], "would make a weight overflow float32"),
    (["set-weight", "--value=inf"], "must be a finite number"),
])
def test_values_that_overflow_float32_are_refused(model_dir, world, capsys, args, message):
    cmd = ["edit", str(model_dir), args[0], "--class", world.class_names[0], "--concept", world.bank.names[0]]
    assert main(cmd + args[1:]) == 2
    assert message in capsys.readouterr().err
    assert not (model_dir / "history.json").exists() or "pending" not in (model_dir / "history.json").read_text()
