"""`cbm edit` and `cbm explain`: preview, log, undo/redo, save and diff from the command line."""

import numpy as np
import pytest
from world_models import save_on_world

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.io import list_versions, load_model, save_model


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=300, dim=32, random_state=0)


@pytest.fixture(scope="module")
def template(world, tmp_path_factory):
    return save_on_world(world, tmp_path_factory.mktemp("cli") / "m", max_epochs=60, with_data=True)


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


# -- naming a shortcut and repairing it, from the command line ----------------------------------
# KnoBo keeps only concepts its prior grounds, so the spurious one is not in the model: it is added
# from example images first, as a user names a shortcut that `cbm discover` found.

@pytest.fixture(scope="module")
def knobo_template(world, tmp_path_factory):
    return save_on_world(world, tmp_path_factory.mktemp("cli") / "k", "knobo", with_data=True, max_epochs=40,
                         device="cpu")


@pytest.fixture
def knobo_dir(knobo_template, tmp_path):
    import shutil

    return shutil.copytree(knobo_template, tmp_path / "k")


def _name_the_shortcut(path, world, capsys) -> tuple[str, str]:
    """`cbm edit add-concept` from ids of training images with and without the spurious concept, saved."""
    tr = world["train"]
    j = world.spurious_index
    on, off = np.flatnonzero(tr.concepts[:, j] > 0)[:15], np.flatnonzero(tr.concepts[:, j] <= 0)[:15]
    ids = np.arange(len(tr.y)).astype(str)
    (path / "neg.txt").write_text("\n".join(ids[off]))
    assert main(["edit", str(path), "add-concept", "--name", "water (picked)", "--positives", ",".join(ids[on]),
                 "--negatives", str(path / "neg.txt")]) == 0
    assert "applied as unsaved edit #1" in capsys.readouterr().out
    assert main(["edit", str(path), "save"]) == 0
    capsys.readouterr()
    return "water (picked)", world.class_names[world.spurious_class]


def test_a_concept_added_from_example_ids_fires_on_images_that_show_it(knobo_dir, world, capsys):
    name, _ = _name_the_shortcut(knobo_dir, world, capsys)
    model = load_model(knobo_dir)
    fires = model.transform(world["test"].X)[:, model.concept_names_.index(name)] > 0.5
    shows = world["test"].concepts[:, world.spurious_index] > 0
    assert fires[shows].mean() >= 0.8 and fires[~shows].mean() <= 0.2


def test_add_concept_names_missing_ids(knobo_dir, capsys):
    assert main(["edit", str(knobo_dir), "add-concept", "--name", "x", "--positives", "0,1,nope",
                 "--negatives", "2,3"]) == 2
    assert "--positives: 1 id(s) are not in the split" in capsys.readouterr().err


def test_preview_of_an_erasure_prints_the_apps_verdict_and_baselines_and_changes_nothing(knobo_dir, world, capsys):
    from cbm.edits import EraseConcept
    from cbm.edits.preview import load_evalsets
    from cbm.edits.report import preview_with_baselines

    name, cls = _name_the_shortcut(knobo_dir, world, capsys)
    before = (knobo_dir / "history.json").read_text()
    assert main(["edit", str(knobo_dir), "preview", "erase", "--concept", name, "--class", cls]) == 0
    out = capsys.readouterr().out
    assert "baselines:" in out and "black box + same fix" in out and "dry run: nothing changed" in out
    assert (knobo_dir / "history.json").read_text() == before
    model = load_model(knobo_dir)
    sets = load_evalsets(model, knobo_dir / "data.npz", ["test", "shifted", "val"])
    same = preview_with_baselines(model, EraseConcept(name, cls), sets, knobo_dir)
    assert f"verdict: {same.verdict()}" in out  # one function, one wording, in the app and here


def test_erase_and_refit_without_apply_as_undoable_edits(knobo_dir, world, capsys):
    name, cls = _name_the_shortcut(knobo_dir, world, capsys)
    m = str(knobo_dir)
    assert main(["edit", m, "erase", "--concept", name, "--class", cls, "--reweight"]) == 0
    assert "applied as unsaved edit #" in capsys.readouterr().out
    assert main(["edit", m, "undo"]) == 0  # erasing drops the concept; undo brings it back
    assert main(["edit", m, "refit-without", "--concept", name]) == 0
    assert "applied as unsaved edit #" in capsys.readouterr().out
    assert main(["edit", m, "history"]) == 0
    out = capsys.readouterr().out
    assert "erase-concept" in out and "refit-without" in out
    assert main(["edit", m, "undo"]) == 0


def test_repair_chooses_on_validation_with_progress_and_applies_only_when_asked(knobo_dir, world, capsys):
    name, cls = _name_the_shortcut(knobo_dir, world, capsys)
    before = (knobo_dir / "history.json").read_text()
    assert main(["edit", str(knobo_dir), "repair", "--class", cls, "--concept", name]) == 0
    out = capsys.readouterr().out
    assert "group-balanced accuracy" in out and "Chosen:" in out and "no edit" in out
    assert len([line for line in out.splitlines() if line.startswith("*")]) == 1
    assert (knobo_dir / "history.json").read_text() == before  # nothing applied without --apply
