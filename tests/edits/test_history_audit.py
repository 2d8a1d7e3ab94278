"""Audit trail of the edit history: who, when, why and the measured effect of every change."""

import json

import numpy as np
import pytest

from cbm.edits import Prune
from cbm.edits.history import EditSession, current_user
from cbm.edits.preview import EvalSet
from cbm.exceptions import ModelDirError


def test_who_comes_from_the_argument_then_the_environment_then_the_login(monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "login")
    monkeypatch.delenv("CBM_USER", raising=False)
    assert current_user() == "login" and current_user("  ann ") == "ann"
    monkeypatch.setenv("CBM_USER", "env-user")
    assert current_user() == "env-user" and current_user("ann") == "ann"
    monkeypatch.delenv("CBM_USER")

    def no_login():
        raise OSError("no login name")

    monkeypatch.setattr(getpass, "getuser", no_login)
    assert current_user() == "unknown"


def test_an_edit_keeps_who_and_its_previewed_effect_through_a_restart(labo_dir, saved_labo):
    world = saved_labo[1]
    s = EditSession(labo_dir, user="ann")
    test = world["test"]
    es = EvalSet.from_model(s.model, test.X, np.asarray(world.class_names)[test.y], "test")
    edit = Prune("cardinal", "red crown")
    effect = s.preview(edit, [es])
    s.apply(edit, why="looks spurious", effect=effect)
    s.save("checked")
    trail = EditSession(labo_dir).audit_trail()
    assert trail["action"].tolist() == ["edit", "save"] and trail["who"].tolist() == ["ann", "ann"]
    got = json.loads(trail["effect"].iloc[0])["test"]
    assert got["n"] == len(test.y) and got["accuracy_before"] == pytest.approx(effect.accuracy.iloc[0].before)
    assert got["predictions_changed"] == len(effect.changed["test"])
    assert trail["why"].tolist() == ["looks spurious", "checked"]


def test_logs_written_before_the_audit_fields_still_open(labo_dir):
    EditSession(labo_dir, user="ann").apply(Prune("cardinal", "red crown"))
    log = json.loads((labo_dir / "history.json").read_text())
    for e in log["entries"]:
        e.pop("who")
    for ev in log["events"]:
        ev.pop("who")
    (labo_dir / "history.json").write_text(json.dumps(log))
    trail = EditSession(labo_dir).audit_trail()
    assert trail["who"].tolist() == [""] and trail["action"].tolist() == ["edit"]


def test_the_audit_fields_are_typed_and_unknown_ones_still_refused(labo_dir):
    EditSession(labo_dir).apply(Prune("cardinal", "red crown"))
    log = json.loads((labo_dir / "history.json").read_text())
    log["entries"][0]["who"] = 7
    (labo_dir / "history.json").write_text(json.dumps(log))
    with pytest.raises(ModelDirError, match="'who' should be"):
        EditSession(labo_dir)
    log["entries"][0]["who"] = "ann"
    log["entries"][0]["mood"] = "happy"
    (labo_dir / "history.json").write_text(json.dumps(log))
    with pytest.raises(ModelDirError, match=r"unknown field\(s\) \['mood'\]"):
        EditSession(labo_dir)
