"""`cbm edit ... --user` and `cbm edit MODEL history --format csv|json`: the audit trail says who
changed the model, when, why, and what the preview measured."""

import csv
import io
import json
import shutil

import pytest
from world_models import save_on_world

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.io import load_config


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=300, dim=32, random_state=0)
    path = save_on_world(world, tmp_path_factory.mktemp("audit") / "m", max_epochs=30, with_data=True)
    return path, world


@pytest.fixture
def edited(template, tmp_path, monkeypatch, capsys):
    """Alice prunes (with a preview), the environment's user undoes and redoes, Bob saves."""
    src, world = template
    m = str(shutil.copytree(src, tmp_path / "m"))
    cls, concept = world.class_names[world.spurious_class], world.bank.names[world.spurious_index]
    monkeypatch.setenv("CBM_USER", "dr.env")
    assert main(["edit", m, "prune", "--class", cls, "--concept", concept, "--eval-on", "test,shifted",
                 "--why", "water is background, not bird", "--user", "dr.alice"]) == 0
    assert main(["edit", m, "undo"]) == 0 and main(["edit", m, "redo"]) == 0
    assert main(["edit", m, "save", "--note", "reviewed by the board", "--user", "dr.bob"]) == 0
    capsys.readouterr()
    return m, cls, concept


def test_json_export_names_who_when_why_and_the_measured_effect(edited, capsys):
    m, cls, concept = edited
    assert main(["edit", m, "history", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["who"]) for r in records] == [
        ("edit", "dr.alice"), ("undo", "dr.env"), ("redo", "dr.env"), ("save", "dr.bob")]
    edit, save = records[0], records[-1]
    assert edit["why"] == "water is background, not bird" and edit["seq"] == 1
    assert cls in edit["edit"] and concept in edit["edit"]
    assert set(edit["effect"]) == {"test", "shifted"}
    shifted = edit["effect"]["shifted"]
    assert shifted["n"] > 0 and 0 <= shifted["accuracy_before"] <= 1 and shifted["predictions_changed"] >= 0
    assert save["version"] == 2 and save["why"] == "reviewed by the board" and save["effect"] is None
    assert all(r["when"].startswith("20") and r["when"].endswith("+00:00") for r in records)
    assert load_config(m, 2)["saved_by"] == "dr.bob"


def test_csv_export_to_a_file(edited, tmp_path, capsys):
    m, _, _ = edited
    out = tmp_path / "audit.csv"
    assert main(["edit", m, "history", "--format", "csv", "--out", str(out)]) == 0
    assert "wrote 4 audit record(s)" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["when", "who", "action", "seq", "version", "edit", "why", "effect"]
    assert rows[0]["who"] == "dr.alice" and json.loads(rows[0]["effect"])["test"]["n"] > 0
    assert rows[-1]["action"] == "save" and rows[-1]["version"] == "2" and rows[-1]["seq"] == ""


def test_without_user_or_env_the_login_name_is_recorded(template, tmp_path, monkeypatch, capsys):
    import getpass

    src, world = template
    m = str(shutil.copytree(src, tmp_path / "m"))
    monkeypatch.delenv("CBM_USER", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "login-name")
    assert main(["edit", m, "remove", "--concept", world.bank.names[0], "--data", "/nonexistent.npz"]
                ) == 2  # a missing --data file is refused before anything is logged
    assert main(["edit", m, "remove", "--concept", world.bank.names[0]]) == 0
    capsys.readouterr()
    assert main(["edit", m, "history", "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["who"] == "login-name" and record["why"] == ""
    assert record["effect"] is not None  # data.npz was there, so the preview's effect is kept


def test_the_table_view_is_unchanged(edited, capsys):
    m, _, _ = edited
    assert main(["edit", m, "history"]) == 0
    out = capsys.readouterr().out
    assert "water is background" in out and "seq" in out


def test_a_formula_in_why_is_neutralised_in_the_csv_export(template, tmp_path, capsys):
    src, world = template
    m = str(shutil.copytree(src, tmp_path / "m"))
    why = '=HYPERLINK("http://evil.example","details")'
    assert main(["edit", m, "prune", "--class", world.class_names[0], "--concept", world.bank.names[0],
                 "--why", why, "--user", "@admin"]) == 0
    out = tmp_path / "audit.csv"
    assert main(["edit", m, "history", "--format", "csv", "--out", str(out)]) == 0
    capsys.readouterr()
    row = next(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert row["why"] == "'" + why and row["who"] == "'@admin"
