"""Edit history: every edit is logged at once, survives a restart, undoes exactly, saves versions."""

import json

import numpy as np
import pytest

from cbm.edits import AddConcept, Prune, RemoveConcept, SetWeight
from cbm.edits.history import EditSession, diff_models
from cbm.exceptions import EditError, ModelDirError
from cbm.io import list_versions, load_model, save_model


def head(model):
    return model.coef_.copy(), model.intercept_.copy(), list(model.concept_names_)


def assert_same_head(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_an_edit_is_logged_at_once_and_replayed_bit_for_bit_after_a_restart(labo_dir):
    s = EditSession(labo_dir)
    s.apply(SetWeight("cardinal", "red crown", 0.123456789), why="expert says so")
    s.apply(RemoveConcept("black face mask"))
    log = json.loads((labo_dir / "history.json").read_text())
    assert [e["status"] for e in log["entries"]] == ["pending", "pending"]
    assert log["entries"][0]["why"] == "expert says so" and log["entries"][0]["changes"][0]["concept"] == "red crown"
    assert_same_head(head(EditSession(labo_dir).model), head(s.model))  # a rerun sees the same edits
    assert list_versions(labo_dir) == [1]  # nothing saved yet


def test_undo_restores_the_exact_weights_and_redo_reapplies(labo_dir):
    s = EditSession(labo_dir)
    h0 = head(s.model)
    s.apply(Prune("blue jay", "blue crest"))
    h1 = head(s.model)
    s.apply(RemoveConcept("red crown"))
    s.undo()
    assert_same_head(head(s.model), h1)
    s.undo()
    assert_same_head(head(s.model), h0)
    assert s.can_redo and not s.can_undo
    s.redo()
    assert_same_head(head(s.model), h1)
    assert_same_head(head(EditSession(labo_dir).model), h1)  # undo/redo state persisted too
    s.apply(Prune("cardinal", "yellow body"))  # a new edit drops the redo stack
    assert not s.can_redo
    with pytest.raises(EditError, match="Nothing to redo"):
        s.redo()


def test_save_writes_a_new_version_that_reloads_bit_for_bit_and_keeps_the_old_one(labo_dir):
    s = EditSession(labo_dir)
    v1 = head(load_model(labo_dir, 1))
    s.apply(Prune("cardinal", "red crown"), why="spurious")
    s.apply(AddConcept.from_vector("dots", np.linspace(-1, 1, 16), {"goldfinch": 2.0}, source="cav"))
    version = s.save("prune + dots")
    assert version == 2 and list_versions(labo_dir) == [1, 2]
    assert_same_head(head(load_model(labo_dir, 2)), head(s.model))
    assert_same_head(head(load_model(labo_dir, 1)), v1)
    X = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    np.testing.assert_array_equal(load_model(labo_dir).decision_function(X), s.model.decision_function(X))
    assert not s.pending and set(s.history()["version"]) == {2}
    with pytest.raises(EditError, match="Nothing to undo"):
        s.undo()
    with pytest.raises(EditError, match="nothing to save"):
        s.save()


def test_diff_lists_weight_changes_and_concepts_added_or_removed(labo_dir):
    s = EditSession(labo_dir)
    old = s.model.coef_[s.model.class_names_.index("cardinal"), s.model.concept_names_.index("red crown")]
    s.apply(SetWeight("cardinal", "red crown", 7.0))
    s.apply(RemoveConcept("blue crest"))
    s.apply(AddConcept.from_vector("dots", np.ones(16), [1.0, 0.0, 0.0]))
    d = s.diff(1)  # against the unsaved state
    assert d.weights[["class", "concept"]].values.tolist() == [["cardinal", "red crown"]]
    assert d.weights["old"].iloc[0] == pytest.approx(old) and d.weights["new"].iloc[0] == 7.0
    assert d.added == ["dots"] and d.removed == ["blue crest"]
    s.save()
    assert s.diff(1, 2).report() == d.report() and s.diff(2, 2).empty
    assert diff_models(load_model(labo_dir, 2), load_model(labo_dir, 1)).added == ["blue crest"]


def test_history_table_says_what_changed_why_and_when(labo_dir):
    s = EditSession(labo_dir)
    s.apply(Prune("cardinal", "red crown"), why="spurious background")
    s.apply(Prune("goldfinch", "yellow body"))
    s.undo()
    h = s.history()
    assert h[["status", "class", "concept", "new", "why"]].values.tolist() == [
        ["pending", "cardinal", "red crown", 0.0, "spurious background"],
        ["undone", "goldfinch", "yellow body", 0.0, ""]]
    assert h["when"].str.match(r"\d{4}-\d\d-\d\dT").all()


def test_two_sessions_on_one_directory_see_each_others_edits(labo_dir):
    app, cli = EditSession(labo_dir), EditSession(labo_dir)
    cli.apply(Prune("cardinal", "red crown"))
    assert_same_head(head(app.model), head(cli.model))
    app.undo()
    assert_same_head(head(cli.model), head(load_model(labo_dir, 1)))


def test_discard_and_revert_go_back_to_saved_weights(labo_dir):
    s = EditSession(labo_dir)
    s.apply(Prune("cardinal", "red crown"))
    assert s.discard() == 1
    assert_same_head(head(s.model), head(load_model(labo_dir, 1)))
    s.apply(Prune("cardinal", "red crown"))
    s.save()
    assert s.revert_to(1) == 3
    assert_same_head(head(s.model), head(load_model(labo_dir, 1)))


def test_a_pending_log_for_another_version_refuses_to_switch(labo_dir):
    EditSession(labo_dir).apply(Prune("cardinal", "red crown"))
    with pytest.raises(EditError, match="save or discard"):
        EditSession(labo_dir, version=2)


def test_a_corrupt_log_gets_a_clear_error(labo_dir):
    (labo_dir / "history.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="history.json.*not valid JSON"):
        EditSession(labo_dir)


def test_a_save_on_a_version_that_is_no_longer_current_is_refused_and_rebase_replays_it(labo_dir):
    s = EditSession(labo_dir)
    s.apply(Prune("cardinal", "red crown"))
    retrained = load_model(labo_dir, 1)
    retrained.coef_ = retrained.coef_ * 2
    save_model(retrained, labo_dir, note="cbm train --out (another command)")  # version 2
    with pytest.raises(EditError, match=r"made on version 1, but version 2 is now current.*another command.*"
                                        r"rebase.*discard"):
        EditSession(labo_dir).save()
    assert list_versions(labo_dir) == [1, 2] and s.pending  # nothing saved, nothing lost
    assert s.rebase() == []
    assert s.version == 2 and s.pending[0]["base_version"] == 2
    v1 = load_model(labo_dir, 1)
    old = v1.coef_[v1.class_names_.index("cardinal"), v1.concept_names_.index("red crown")]
    assert s.pending[0]["changes"][0]["old"] == pytest.approx(2 * old)  # as in the new base
    assert s.save() == 3
    v3 = load_model(labo_dir, 3)
    np.testing.assert_array_equal(np.delete(v3.coef_, 0, 1), np.delete(retrained.coef_, 0, 1))
    assert v3.coef_[v3.class_names_.index("cardinal"), v3.concept_names_.index("red crown")] == 0


def test_revert_makes_an_older_version_current_as_a_new_version_and_logs_it(labo_dir):
    from cbm.edits.history import revert
    from cbm.io import load_config

    s = EditSession(labo_dir)
    s.apply(SetWeight("cardinal", "red crown", 5.0))
    with pytest.raises(EditError, match="unsaved edit.*before reverting"):
        revert(labo_dir, 1)
    s.save("five")
    with pytest.raises(EditError, match="no version 9"):
        revert(labo_dir, 9)
    with pytest.raises(EditError, match="already the current version"):
        revert(labo_dir, 2)
    assert revert(labo_dir, 1) == 3
    assert_same_head(head(load_model(labo_dir)), head(load_model(labo_dir, 1)))
    assert load_config(labo_dir, 3)["reverted_from"] == 1 and list_versions(labo_dir) == [1, 2, 3]
    log = json.loads((labo_dir / "history.json").read_text())
    assert log["events"][-1]["event"] == "revert" and log["events"][-1]["version"] == 3
    assert_same_head(head(s.model), head(load_model(labo_dir, 1)))  # the open session follows


def test_a_session_with_nothing_pending_follows_a_version_saved_elsewhere(labo_dir):
    s = EditSession(labo_dir)
    other = load_model(labo_dir)
    other.coef_ = other.coef_ * 3
    save_model(other, labo_dir)
    s.apply(Prune("cardinal", "red crown"))  # applied on version 2, the current one
    assert s.version == 2 and s.save() == 3


def test_a_save_killed_before_the_log_was_written_is_marked_saved_not_saved_twice(labo_dir, monkeypatch):
    import cbm.edits.history

    s = EditSession(labo_dir)
    s.apply(Prune("cardinal", "red crown"))
    real = cbm.edits.history.save_model

    def killed_after_saving(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt  # the version and model.json are written, history.json is not

    monkeypatch.setattr(cbm.edits.history, "save_model", killed_after_saving)
    with pytest.raises(KeyboardInterrupt):
        s.save()
    monkeypatch.undo()
    again = EditSession(labo_dir)
    assert not again.pending and "saved as version 2" in again.warnings[0]
    assert again.history()["version"].tolist() == [2] and list_versions(labo_dir) == [1, 2]


@pytest.mark.parametrize("mutate, message", [
    (lambda log: log["entries"][0].update(colour="red"), r"entry 1 has unknown field\(s\) \['colour'\]"),
    (lambda log: log["entries"][0]["edit"].update(colour="red"), "entry 1 holds an edit that cannot be read"),
    (lambda log: log["entries"][0].update(seq="one"), "'seq' should be an integer"),
    (lambda log: log["entries"][0].update(status="lost"), "status 'lost'"),
    (lambda log: log.update(redo=[99]), "'redo' should list seq numbers"),
    (lambda log: log.update(entries={}), "'entries' should be a list"),
])
def test_a_log_of_the_wrong_shape_names_the_file_and_the_fix(labo_dir, mutate, message):
    EditSession(labo_dir).apply(Prune("cardinal", "red crown"))
    log = json.loads((labo_dir / "history.json").read_text())
    mutate(log)
    (labo_dir / "history.json").write_text(json.dumps(log))
    with pytest.raises(ModelDirError, match=f"history.json.*{message}.*move it away"):
        EditSession(labo_dir)


def test_a_binary_log_names_the_file(labo_dir):
    (labo_dir / "history.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ModelDirError, match="history.json.*not text"):
        EditSession(labo_dir)
