"""Global edits: exact undo, previews that match the committed model, and the spurious-concept fix."""

import importlib.util

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.edits import (
    AddConcept,
    ApplyPrior,
    Edit,
    Prune,
    PruneNormalize,
    RemoveConcept,
    ScaleWeight,
    SetWeight,
)
from cbm.edits.preview import EvalSet, load_evalsets, preview, read_sample, suggest_edits
from cbm.exceptions import DataError, EditError
from cbm.models import create_model

SPLITS = ("val", "test", "shifted")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=300, dim=32, random_state=0)


FAST = {"labo": {"max_epochs": 60}, "pcbm": {"n_lambdas": 3, "max_iter": 500},
        "pcbm-h": {"n_lambdas": 3, "max_iter": 500}}


def fit(method, world, **params):
    names = np.asarray(world.class_names)
    params = {**FAST.get(method, {}), **params}
    if method != "linear-probe":
        params["concepts"] = world.bank
    return create_model(method, **params).fit(world["train"].X, names[world["train"].y])


def evalsets(model, world):
    return {s: EvalSet.from_model(model, world[s].X, world[s].y, s, world[s].domains,
                                  class_names=world.class_names) for s in SPLITS}


@pytest.fixture(scope="module")
def fitted(world):
    """Each method fitted once per module (copies are handed out)."""
    cache = {}

    def get(method):
        import copy

        if method not in cache:
            cache[method] = fit(method, world)
        return copy.deepcopy(cache[method])
    return get


@pytest.fixture
def labo(fitted):
    return fitted("labo")


@pytest.fixture
def model(fitted):
    return fitted("labo")


def accuracy(model, world, split):
    return float((model.predict(world[split].X) == np.asarray(world.class_names)[world[split].y]).mean())


METHODS = ["labo"] + (["pcbm", "pcbm-h"] if importlib.util.find_spec("cbm.models.pcbm") else [])


@pytest.mark.parametrize("method", METHODS)
def test_pruning_the_spurious_concept_from_the_class_it_helps_raises_shifted_accuracy(method, world, fitted):
    """Done-when: the edit fixes the shift, the preview says by how much, undo is exact."""
    m = fitted(method)
    spurious, cls = world.bank.names[world.spurious_index], world.class_names[world.spurious_class]
    assert m.coef_[m.class_names_.index(cls), m.concept_names_.index(spurious)] > 0  # the model leans on it
    W0 = m.coef_.copy()
    effect = preview(m, Prune(cls, spurious), evalsets(m, world))
    gain = effect.delta("shifted")
    assert gain > 0.05
    assert f"shifted: accuracy {accuracy(m, world, 'shifted'):.1%} -> " in effect.report()
    assert f"{100 * gain:+.1f} points" in effect.report()
    np.testing.assert_array_equal(m.coef_, W0)  # preview commits nothing
    before = accuracy(m, world, "shifted")
    record = Prune(cls, spurious).apply(m)
    assert accuracy(m, world, "shifted") == pytest.approx(before + gain)
    assert record.changes == [{"class": cls, "concept": spurious, "old": float(W0[m.class_names_.index(cls),
                               m.concept_names_.index(spurious)]), "new": 0.0}]
    record.undo(m)
    np.testing.assert_array_equal(m.coef_, W0)


def test_suggest_edits_ranks_the_spurious_concept_first(labo, world):
    df = suggest_edits(labo, evalsets(labo, world), top=5)
    first = df.iloc[0]
    assert (first["class"], first["concept"]) == (world.class_names[world.spurious_class],
                                                  world.bank.names[world.spurious_index])
    assert "'source'" in first["reason"] and "'shifted'" in first["reason"]
    assert isinstance(first["edit"], Prune)


EDITS = [
    Prune("blue jay", "black wings"), Prune(None, "red crown"), PruneNormalize("cardinal", "red crown"),
    SetWeight("goldfinch", "yellow body", -2.5), ScaleWeight(None, "blue crest", 3.0),
    RemoveConcept("black wings"), ApplyPrior(0.5),
]


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.kind)
def test_preview_predicts_exactly_what_the_committed_edit_does(edit, model, world):
    sets = evalsets(model, world)
    effect = preview(model, edit, sets)
    record = edit.apply(model)
    for s in SPLITS:
        after = model.logits_from_activations(model.transform(world[s].X)).argmax(1)
        n_changed = int((sets[s].logits(model).argmax(1) != after).sum())  # cache synced to the edit
        assert n_changed == 0
        assert effect.delta(s) == pytest.approx(float((after == sets[s].y).mean()) - effect.accuracy.query(
            f"split == '{s}' and group == 'all'")["before"].iloc[0])
    assert len(effect.changes) == len(record.changes) > 0


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.kind)
def test_undo_restores_the_exact_previous_head(edit, model):
    before = {k: np.array(getattr(model, k), copy=True) for k in ("coef_", "intercept_", "keep_")}
    names = model.concept_names_
    edit.apply(model).undo(model)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(model, k), v)
    assert model.concept_names_ == names


@pytest.mark.parametrize("edit", [*EDITS, AddConcept.from_vector("dot", np.ones(4), {"a": 1.0}, intercept=0.5)],
                         ids=lambda e: e.kind)
def test_edits_round_trip_through_json(edit):
    import json

    assert Edit.from_dict(json.loads(json.dumps(edit.to_dict()))) == edit


def test_prune_normalize_keeps_the_class_row_l1_norm(model):
    k = model.class_names_.index("cardinal")
    norm = np.abs(model.coef_[k]).sum()
    PruneNormalize("cardinal", "red crown").apply(model)
    assert model.coef_[k, model.concept_names_.index("red crown")] == 0
    assert np.abs(model.coef_[k]).sum() == pytest.approx(norm, rel=1e-5)


def test_add_concept_scores_the_new_column_once_and_matches_the_committed_model(model, world):
    sets = evalsets(model, world)
    cav = world.bank.vectors[world.spurious_index] + 0.1
    edit = AddConcept.from_vector("water (CAV)", cav, {"blue jay": 5.0}, source="cav")
    effect = preview(model, edit, sets)
    edit.apply(model)
    assert model.concept_names_[-1] == "water (CAV)" and model.concepts_.provenance[-1].source == "cav"
    for s in SPLITS:
        np.testing.assert_allclose(sets[s].logits(model), model.decision_function(world[s].X), rtol=1e-4, atol=1e-3)
    assert effect.changes["new"].tolist() == [5.0]


def test_add_concept_from_text_uses_the_encoder_text_tower(model):
    class FakeText:
        fingerprint = model.concepts_.encoder_fingerprint

        def encode_text(self, texts):
            return np.ones((len(texts), model.n_features_in_), np.float32)

    edit = AddConcept.from_text("striped wings", FakeText(), [0.0, 1.0, 0.0])
    edit.apply(model)
    assert model.concept_names_[-1] == "striped wings"
    assert edit.encoder_fingerprint == model.concepts_.encoder_fingerprint


def test_apply_prior_zeroes_weights_that_contradict_it(world):
    m = fit("linear-probe", world)
    P = -np.sign(m.coef_)
    P[:, :5] = np.sign(m.coef_[:, :5])
    ApplyPrior(1.0, P.tolist()).apply(m)
    assert (m.coef_[:, 5:] == 0).all() and (m.coef_[:, :5] != 0).all()


@pytest.mark.parametrize("edit, message", [
    (SetWeight("cardinal", "red crown", float("inf")), "finite"),
    (ScaleWeight("cardinal", "red crown", "x"), "must be a number"),
    (Prune("cardinal", "red crwn"), "Did you mean 'red crown'"),
    (Prune("cardnal", "red crown"), "Did you mean 'cardinal'"),
    (ApplyPrior(2.0), r"\[0, 1\]"),
    (AddConcept.from_vector("x", np.ones(3), {"cardinal": 1.0}), "3-d vector"),
    (AddConcept.from_vector("red crown", np.ones(32), {"cardinal": 1.0}), "already has"),
])
def test_bad_edits_get_one_clear_error_and_change_nothing(edit, message, model):
    W = model.coef_.copy()
    with pytest.raises(EditError, match=message):
        edit.apply(model)
    np.testing.assert_array_equal(model.coef_, W)


def test_an_edit_that_leaves_a_class_without_concepts_is_refused(world):
    m = fit("linear-probe", world)
    m.coef_[0, 1:] = 0
    with pytest.raises(EditError, match="no concept"):
        Prune(m.class_names_[0], 0).apply(m)
    with pytest.raises(EditError, match="no concept"):
        RemoveConcept(0).apply(m)


def test_a_failing_commit_restores_the_model(model, monkeypatch):
    W, names = model.coef_.copy(), model.concept_names_

    def boom(j):
        model.coef_ = model.coef_ * 0
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "remove_concept", boom)
    with pytest.raises(RuntimeError):
        RemoveConcept("red crown").apply(model)
    np.testing.assert_array_equal(model.coef_, W)
    assert model.concept_names_ == names


def test_evaluation_npz_with_index_or_name_labels_loads_as_evalsets(labo, world, tmp_path):
    path = world.save_npz(tmp_path / "splits.npz")
    sets = load_evalsets(labo, path, ["test", "shifted"])
    assert list(sets) == ["test", "shifted"] and (sets["shifted"].domains == "shifted").all()
    names = np.asarray(world.class_names)
    expected = [labo.class_names_.index(n) for n in names[world["test"].y]]  # the model's class order
    np.testing.assert_array_equal(sets["test"].y, expected)
    np.savez(tmp_path / "named.npz", X_test=world["test"].X, y_test=names[world["test"].y],
             ids_test=np.array([f"t{i}" for i in range(len(world["test"]))]))
    np.testing.assert_array_equal(load_evalsets(labo, tmp_path / "named.npz")["test"].y, expected)
    split, row, x, y = read_sample(tmp_path / "named.npz", "t7")
    assert (split, row, y) == ("test", 7, names[world["test"].y[7]])
    with pytest.raises(DataError, match="Unknown split 'shiftd'"):
        load_evalsets(labo, path, ["shiftd"])
    with pytest.raises(DataError, match="not found"):
        load_evalsets(labo, tmp_path / "missing.npz")


def test_create_edit_builds_every_kind_and_names_the_allowed_ones():
    from cbm.edits import EDIT_KINDS, Prune, create_edit

    assert create_edit("prune", cls="a", concept="b") == Prune("a", "b")
    with pytest.raises(EditError, match="Did you mean 'prune'"):
        create_edit("prun", cls="a", concept="b")
    with pytest.raises(EditError, match="unexpected"):
        create_edit("remove-concept", concept="b", cls="a")
    assert {"prune", "prune-normalize", "set-weight", "remove-concept", "add-concept"} <= set(EDIT_KINDS)


def test_the_eraser_library_imports_without_torch_s_jit_warning():
    import subprocess
    import sys

    code = "from cbm.edits._refit_edits import leace_fitter; print(leace_fitter().__name__)"
    out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "LeaceFitter", out.stderr[-2000:]


def test_every_edit_kind_has_words_for_people():
    from cbm.edits import EDIT_KINDS

    def kinds(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from kinds(sub)

    described = {k.kind for k in kinds(Edit) if k.plain is not Edit.plain}
    assert set(EDIT_KINDS) <= described, "edit kinds without plain(): " + str(sorted(set(EDIT_KINDS) - described))
