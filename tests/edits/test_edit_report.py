"""One logged edit's before/after on one self-contained page: `cbm report MODEL --edit N`."""

import html
import re

import numpy as np
import pytest

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.edits import Prune, RemoveConcept
from cbm.edits.history import EditSession
from cbm.edits.preview import load_evalsets
from cbm.edits.report import black_box, edit_report, logged_edit, preview_with_baselines
from cbm.io import load_model, save_model
from cbm.models import create_model
from cbm.models.baselines import LinearProbe


@pytest.fixture(scope="module")
def edited_dir(tmp_path_factory):
    """A PCBM with a spurious concept, data.npz with images, the demo's black box next to it, and
    three logged edits: #1 saved into version 2, #2 and #3 pending on version 2."""
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=32, spurious=True, random_state=0)
    names = np.asarray(world.class_names)
    X, y = world["train"].X, names[world["train"].y]
    root = tmp_path_factory.mktemp("edit-report")
    path = root / "pcbm"
    save_model(create_model("pcbm", concepts=world.bank).fit(X, y), path, note="fixture")
    save_model(LinearProbe().fit(X, y), root / "models" / "linear-probe", note="black box")
    rng = np.random.default_rng(0)
    arrays = {}
    for s in ("test", "shifted", "train"):
        sp = world[s]
        arrays |= {f"X_{s}": sp.X, f"y_{s}": names[sp.y], f"domains_{s}": sp.domains,
                   f"ids_{s}": [f"{s}-{i:03d}" for i in range(len(sp))],
                   f"images_{s}": rng.integers(0, 255, (len(sp), 28, 28), dtype=np.uint8)}
    np.savez(path / "data.npz", **arrays)
    model = load_model(path)
    spurious = model.concept_names_[world.spurious_index]
    cls = model.class_names_[int(np.argmax(np.abs(model.coef_[:, world.spurious_index])))]
    session = EditSession(path, user="tester")
    session.apply(Prune(cls, spurious), why="the tag is a site artifact")
    session.save(note="pruned the tag")
    other = model.concept_names_[(world.spurious_index + 1) % len(model.concept_names_)]
    session.apply(RemoveConcept(other), why="second")
    session.apply(Prune(cls, model.concept_names_[(world.spurious_index + 2) % len(model.concept_names_)]))
    return path, cls, spurious, other


def _no_outside_requests(page: str) -> None:
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<script" not in page and "http" not in page


def test_before_is_the_version_the_edit_was_made_on_plus_earlier_edits_of_its_batch(edited_dir):
    path, cls, spurious, other = edited_dir
    m1, e1, entry1 = logged_edit(path, 1)
    assert entry1["status"] == "saved" and m1.version_ == 1
    assert isinstance(e1, Prune) and e1.concept == spurious
    m3, _, _ = logged_edit(path, 3)
    assert other not in m3.concept_names_  # #2 (pending, same batch) is replayed before #3
    j = m3.concept_names_.index(spurious)
    assert m3.coef_[m3.class_names_.index(cls), j] == 0  # version 2 holds #1


def test_page_has_the_previews_numbers_verdict_and_baselines_offline(edited_dir):
    path, cls, spurious, _ = edited_dir
    page = edit_report(path, 1)
    _no_outside_requests(page)
    model = load_model(path, 1)
    effect = preview_with_baselines(model, Prune(cls, spurious), load_evalsets(model, path / "data.npz"), path)
    assert effect.baselines is not None and "black box" in set(effect.baselines["model"])
    assert effect.verdict() in html.unescape(page)
    rec = effect.recall()
    assert rec.index[0] == cls  # the class the edit is about comes first, in the page too
    first_row = re.search(r"Recall per class.*?<tr>.*?</tr><tr><td>(.*?)</td>", page).group(1)
    assert first_row == cls
    b, a = rec.loc[cls, "shifted before"], rec.loc[cls, "shifted after"]
    assert f"{b:.1%} &rarr; {a:.1%}" in page
    acc = effect.accuracy
    row = acc[(acc["split"] == "shifted") & (acc["group"] == "all")].iloc[0]
    assert f"{row.before:.1%}" in page and f"{100 * row.delta:+.1f}" in page
    assert "Baselines" in page and "black box + same fix" in page
    assert "the tag is a site artifact" in page and "saved in version 2" in page
    n_flips = len(effect.changed["shifted"])
    assert page.count("data:image/png;base64,") >= min(n_flips, 1)


def test_without_a_saved_black_box_a_linear_probe_is_fitted_on_the_training_split(edited_dir, tmp_path):
    import shutil

    from cbm.edits.preview import load_eval_data

    path = tmp_path / "alone"
    shutil.copytree(edited_dir[0], path)
    probe = black_box(path)
    train = load_eval_data(path / "data.npz")["train"]
    assert probe.method == "linear-probe" and probe.n_features_in_ == train["X"].shape[1]
    assert black_box(path) is probe  # fitted once per version of data.npz
    assert "Baselines" in edit_report(path, 2)


def test_without_a_black_box_the_page_still_has_the_preview(edited_dir, tmp_path):
    import shutil

    from cbm.data.evalfile import save_eval_data
    from cbm.edits.preview import load_eval_data

    path = tmp_path / "alone"
    shutil.copytree(edited_dir[0], path)
    splits = {k: v for k, v in load_eval_data(path / "data.npz").items() if k != "train"}
    save_eval_data(path / "data.npz", splits)
    assert black_box(path) is None
    page = edit_report(path, 2)
    assert "Verdict" in page and "Recall per class" in page and "Baselines unavailable" in page


def test_cli_writes_the_edit_report_and_names_bad_numbers(edited_dir, tmp_path, capsys):
    path = edited_dir[0]
    out = tmp_path / "edit.html"
    assert main(["report", str(path), "--edit", "1", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    _no_outside_requests(text)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert main(["report", str(path), "--edit", "9", "-o", str(out)]) == 2
    assert "no edit #9" in capsys.readouterr().err
    assert main(["report", str(path), "--edit", "1", "--versus", "cardinal"]) == 2
    assert "--versus apply to --sample only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(path), "--edit", "1", "--sample", "3"])


def test_an_added_concept_is_described_by_its_name_and_examples_not_its_vector():
    from cbm.edits import AddConcept
    from cbm.edits.report import plain_description

    rng = np.random.default_rng(0)
    edit = AddConcept.from_examples("corner tag", rng.normal(1, 1, (4, 8)), rng.normal(-1, 1, (4, 8)),
                                    {"Shirt": -2.0})
    words = plain_description(edit)
    assert words == ("add the concept “corner tag” (a CAV fitted on 4 example(s) that show it and 4 that "
                     "don't) with weight -2.00 for Shirt")


def test_a_recorded_black_box_is_the_one_edits_are_compared_with_wherever_the_folders_move(edited_dir, tmp_path):
    import shutil

    from cbm.edits.preview import load_eval_data
    from cbm.edits.report import BLACK_BOX, record_black_box
    from cbm.io import save_model
    from cbm.models import create_model

    shutil.copytree(edited_dir[0], tmp_path / "a" / "model")
    train = load_eval_data(tmp_path / "a" / "model" / "data.npz")["train"]
    probe = create_model("linear-probe", random_state=1, max_iter=20).fit(train["X"], train["y"])
    save_model(probe, tmp_path / "a" / "models" / "probe")
    record_black_box(tmp_path / "a" / "model", tmp_path / "a" / "models" / "probe")
    assert (tmp_path / "a" / "model" / BLACK_BOX).read_text().count("../models/probe") == 1
    shutil.move(tmp_path / "a", tmp_path / "b")  # the path is relative: moving both keeps the link
    found = black_box(tmp_path / "b" / "model")
    np.testing.assert_array_equal(found.coef_, probe.coef_)


def test_a_black_box_that_cannot_be_loaded_is_named_and_a_probe_stands_in(edited_dir, tmp_path):
    import shutil

    from cbm.edits.report import BLACK_BOX

    path = tmp_path / "model"
    shutil.copytree(edited_dir[0], path)
    (path / BLACK_BOX).write_text('{"model_dir": "../nowhere"}')
    with pytest.warns(UserWarning, match=r"black-box\.json' names a black box that cannot be loaded"):
        probe = black_box(path)
    assert probe.method == "linear-probe"
