"""Repairs of the demo's confounder on the quick configuration: refitting edits preview, apply, undo,
save and replay like head edits; the repair is chosen on validation data only; the report shows the
chosen edit, per-class recall and the baselines."""

import shutil

import numpy as np
import pytest

from cbm.demo import ARTIFACT
from cbm.edits import Edit, EraseConcept, RefitWithout, TrainingData
from cbm.edits.history import EditSession
from cbm.edits.preview import edited_copy, load_evalsets, preview
from cbm.exceptions import EditError
from cbm.io import load_model


@pytest.fixture()
def model_dir(quick_demo, tmp_path):
    """A private copy of the demo's model directory (with its data.npz)."""
    return shutil.copytree(quick_demo.model_dir, tmp_path / "model")


@pytest.fixture()
def confounded(quick_demo):
    return quick_demo.suspect[0]


@pytest.mark.parametrize("make", [lambda k: RefitWithout(ARTIFACT), lambda k: EraseConcept(ARTIFACT, k),
                                  lambda k: RefitWithout(ARTIFACT, reweight=True),
                                  lambda k: EraseConcept(ARTIFACT, k, refit_predictors=True, reweight=True)],
                         ids=["refit-without", "erase-concept", "refit-without-reweighted",
                              "erase-concept-regrounded-reweighted"])
def test_refitting_edit_previews_applies_undoes_and_saves(model_dir, confounded, make):
    edit = make(confounded)
    s = EditSession(model_dir)
    sets = load_evalsets(s.model, model_dir / "data.npz", ["test", "shifted"])
    W0, X = s.model.coef_.copy(), sets["shifted"].X
    logits0 = s.model.decision_function(X)

    effect = s.preview(edit, sets)  # training data from the model directory's data.npz
    assert ARTIFACT in s.model.concept_names_  # preview commits nothing

    s.apply(edit, why="repair the confounder")
    assert ARTIFACT not in s.model.concept_names_
    after = s.model.decision_function(X).argmax(1)
    assert np.isclose((after == sets["shifted"].y).mean(), effect.value("shifted", "all", "after"))
    assert sets["shifted"].sync(s.model).activations.shape[1] == len(s.model.concept_names_)

    s.undo()
    np.testing.assert_array_equal(s.model.coef_, W0)
    np.testing.assert_allclose(s.model.decision_function(X), logits0, rtol=0, atol=1e-6)
    assert getattr(s.model, "eraser_left_", None) is None

    s.redo()
    replayed = EditSession(model_dir).model  # a new process replays the pending edit
    np.testing.assert_allclose(replayed.decision_function(X), s.model.decision_function(X), atol=1e-4)
    v = s.save("repair")
    loaded = load_model(model_dir, v)
    np.testing.assert_allclose(loaded.decision_function(X), s.model.decision_function(X), atol=1e-5)
    if isinstance(edit, EraseConcept):
        assert loaded.eraser_left_.shape[0] == X.shape[1]  # the eraser is part of the saved weights


def test_reweighted_refit_weighs_the_head_so_the_concept_is_independent_of_the_class(quick_demo, confounded):
    """The reweighted head differs from the plain refit, and its weights balance (class, concept) cells."""
    from cbm.metrics import independence_weights

    model = load_model(quick_demo.model_dir)
    data = TrainingData.for_model(model)
    plain = edited_copy(model, RefitWithout(ARTIFACT).using(data))[0]
    weighted = edited_copy(model, RefitWithout(ARTIFACT, reweight=True).using(data))[0]
    assert not np.allclose(plain.coef_, weighted.coef_)
    flags = RefitWithout(ARTIFACT).training_flags(model, data)
    w = independence_weights(data.y, flags)
    k = data.y == confounded
    # weighted, P(concept on | k) is the concept's overall rate, as if it were independent of the class
    assert 0 < flags[k].mean() < 1 and not np.isclose(flags[k].mean(), flags.mean())
    assert np.isclose((w * flags)[k].sum() / w[k].sum(), flags.mean())


def test_refitting_edits_round_trip_through_dicts_without_their_data():
    e = EraseConcept(ARTIFACT, "Shirt", class_conditional=True).using(object())
    d = e.to_dict()
    assert d == {"kind": "erase-concept", "concept": ARTIFACT, "cls": "Shirt", "threshold": 0.5,
                 "class_conditional": True, "refit_predictors": False, "reweight": False}
    assert Edit.from_dict(d) == e
    older = {k: v for k, v in d.items() if k != "reweight"}  # logged before ``reweight`` existed
    assert Edit.from_dict(older) == e
    assert Edit.from_dict(RefitWithout(ARTIFACT).to_dict()) == RefitWithout(ARTIFACT)


def test_refitting_edit_without_training_data_says_how_to_give_it(quick_demo):
    model = load_model(quick_demo.model_dir)
    del model.model_dir_
    with pytest.raises(EditError, match="TrainingData"):
        RefitWithout(ARTIFACT).apply(model)


def test_eraser_uses_the_models_predictor_not_the_stamp(quick_demo, confounded):
    """The eraser is fitted against the model's own artifact predictions on non-k training images."""
    model = load_model(quick_demo.model_dir)
    data = TrainingData.for_model(model)
    edit = EraseConcept(ARTIFACT, confounded)
    flags = edit.training_flags(model, data)
    assert flags.dtype == bool and 0 < flags.mean() < 1
    L, R, bias = edit.fit_eraser(model, data)
    keep = data.y != confounded
    Xe = data.X[keep] - ((data.X[keep] - bias) @ R.T) @ L.T
    # after erasure the predicted-artifact groups have the same mean embedding (LEACE's guarantee)
    gap = Xe[flags[keep]].mean(0) - Xe[~flags[keep]].mean(0)
    assert np.abs(gap).max() < 1e-2 * np.abs(data.X[keep]).mean()


def test_repair_is_chosen_on_validation_data_only(quick_demo):
    reps = quick_demo.repairs
    assert reps["chosen"].iloc[0] and reps["chosen"].sum() == 1
    assert "no edit" in set(reps["name"])  # leaving the model alone is a candidate too
    chosen = reps.iloc[0]
    # an edit is chosen only when it beats "no edit" beyond the bootstrap noise, and then it is the best
    if chosen["edit"] is not None:
        assert chosen["gain_low"] > 0
        assert chosen["score"] == reps.loc[reps["gain_low"] > 0, "score"].max()
    else:
        assert not (reps["gain_low"] > 0).any()


def test_preview_of_a_repair_has_recall_and_baselines(quick_demo):
    e = quick_demo.edit_effect
    if e is None:  # no edit was chosen: preview the best-scoring candidate the way the demo would have
        from cbm.edits.repair import compare_baselines

        model = load_model(quick_demo.model_dir)
        sets = load_evalsets(model, quick_demo.model_dir / "data.npz", ["val", "test", "shifted"])
        edit = quick_demo.repairs.dropna(subset=["edit"]).iloc[0]["edit"]
        probe = load_model(quick_demo.config.out_dir / "models" / "linear-probe")
        e = preview(model, edit, sets)
        e.baselines = compare_baselines(model, edit, sets, probe, TrainingData.for_model(model),
                                        cls=quick_demo.suspect[0])
    rec = e.recall()
    assert rec.index[0] == quick_demo.suspect[0]  # the affected class first
    assert {"shifted before", "shifted after", "test before", "test after"} <= set(rec.columns)
    models = set(e.baselines["model"])
    k = quick_demo.suspect[0]
    assert {"black box", "black box + same fix", f"CBM never predicts {k}", "CBM after the edit"} <= models
    never = e.baselines[e.baselines["model"] == f"CBM never predicts {k}"]
    assert (never["recall"] == 0).all()


def test_report_prints_the_chosen_edit_baselines_recall_and_verdict(quick_demo):
    text = quick_demo.report()
    assert "Chosen edit:" in text and "Repairs of" in text
    assert "Concept faithfulness" in text
    if quick_demo.edit_effect is not None:
        assert "per-class recall" in text and "black box + same fix" in text and "verdict:" in text


def test_preview_of_a_head_edit_reports_recall_for_its_class(quick_demo):
    from cbm.edits import Prune

    model = load_model(quick_demo.model_dir)
    sets = load_evalsets(model, quick_demo.model_dir / "data.npz", ["test", "shifted"])
    k = quick_demo.suspect[0]
    eff = preview(model, Prune(k, ARTIFACT), sets)
    assert eff.affected == k and eff.recall().index[0] == k
    assert eff.verdict()


def test_an_edit_has_a_short_label_naming_the_options_switched_on():
    assert RefitWithout(ARTIFACT).short_label() == "refit-without"
    label = EraseConcept(ARTIFACT, "Shirt", class_conditional=True, refit_predictors=True).short_label()
    assert label == "erase-concept (class-conditional, refit-predictors)"


def test_faithfulness_measures_leakage_and_finds_the_tag_within_each_class(quick_demo):
    from cbm.demo.garments import CLASSES, concept_labels, garment_concept_bank, measured_thresholds
    from cbm.demo.pipeline import build_splits, embed_splits
    from cbm.models import create_model
    from cbm.research.faithfulness import concept_faithfulness

    splits = build_splits(quick_demo.config)
    X, _, _ = embed_splits(splits, quick_demo.config, progress=False)  # from the demo's cache
    bank, th = garment_concept_bank(), measured_thresholds(splits["train"].clean)
    labels = {s: concept_labels(bank, np.asarray([CLASSES.index(c) for c in splits[s].y]), splits[s].stamped,
                                splits[s].clean, th) for s in ("train", "shifted")}
    shifted = splits["shifted"]  # the tag on most images of nine classes: leakage is measurable per class
    faith = {}
    for balanced in (True, False):
        model = create_model("knobo", concepts=bank, grounding_l2="auto",
                             balance_concept=ARTIFACT if balanced else None)
        model.fit(X["train"], splits["train"].y, concept_labels=labels["train"],
                  X_val=X["val"], y_val=splits["val"].y)
        faith[balanced] = concept_faithfulness(model, X["shifted"], shifted.y, labels["shifted"], bank,
                                               nuisance=shifted.stamped).set_index("concept")
    garments = faith[True].drop(index=ARTIFACT)
    measured = garments["leakage"].dropna()
    assert len(measured) >= len(garments) // 2 and measured.between(0.5, 1).all()
    tag = faith[True].loc[ARTIFACT]
    # grounded balanced over (class, tag) cells, the tag's predictor detects the tag inside every class
    assert tag["auc_within_class"] > 0.8 and not tag["disguised"]
    # decorrelating the grounding from the tag leaves the garment concepts less to leak (0.66 vs 0.69 here)
    assert measured.median() < faith[False].drop(index=ARTIFACT)["leakage"].median()
