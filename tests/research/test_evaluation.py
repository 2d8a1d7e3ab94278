"""Concept-level evaluation: per-concept accuracy and AUC, leakage, NEC/ANEC, for any concept model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from world_models import one_torch_thread

from cbm.metrics import anec, anec_truncated, nec
from cbm.models import create_model
from cbm.research.annotations import from_array
from cbm.research.evaluation import (
    concept_agreement,
    concept_leakage,
    evaluate_concepts,
    evaluate_splits,
    fit_thresholds,
    roc_auc,
)


@pytest.fixture(scope="module")
def model(world):
    with one_torch_thread():
        return create_model("pcbm", concepts=world.bank, n_lambdas=1, max_iter=300, device="cpu").fit(
            world["train"].X, world["train"].y)


def annotations(world, split):
    return from_array(world[split].concepts, world.bank.names)


class TestBuildingBlocks:
    def test_thresholds_separate_a_separable_concept(self):
        A = np.array([[0.1, 5.0], [0.2, 5.0], [0.8, 5.0], [0.9, 5.0]])
        T = np.array([[0, 1], [0, 1], [1, 1], [1, 1]], float)
        th = fit_thresholds(A, T)
        assert 0.2 < th[0] < 0.8 and th[1] == pytest.approx(5.0)  # one label only: the median
        n, pos, acc, auc = concept_agreement(A, T, th)
        assert acc[0] == 1.0 and auc[0] == 1.0
        assert np.isnan(auc[1]) and pos.tolist() == [2, 4]

    def test_auc_matches_scikit_learn_with_ties(self):
        from sklearn.metrics import roc_auc_score

        rng = np.random.default_rng(0)
        s, t = rng.integers(0, 5, 200).astype(float), rng.random(200) < 0.3
        assert roc_auc(s, t) == pytest.approx(roc_auc_score(t, s))

    def test_unknown_labels_are_left_out(self):
        A = np.array([[0.1], [0.9], [0.5]])
        T = np.array([[0], [1], [np.nan]])
        n, _, acc, _ = concept_agreement(A, T, np.array([0.5]))
        assert n.tolist() == [2] and acc[0] == 1.0

    def test_leakage_is_soft_minus_hard(self):
        rng = np.random.default_rng(0)
        y = np.repeat([0, 1], 100)
        concept = np.ones(200)  # the hard value says nothing; the soft value carries the class
        soft = (concept + 0.5 * (2 * y - 1) * 0.1 + 0.01 * rng.standard_normal(200))[:, None]
        out = concept_leakage(soft, y, thresholds=np.array([0.5]))
        assert out["soft"] > 0.95 and out["hard"] == pytest.approx(0.5, abs=0.02)
        assert out["leakage"] == pytest.approx(out["soft"] - out["hard"])


class TestEvaluateConcepts:
    def test_planted_concepts_are_recovered(self, model, world):
        ev = evaluate_concepts(model, world["test"].X, world["test"].y, annotations(world, "test"))
        assert len(ev.concepts) == len(model.concept_names_) == ev.n_concepts
        assert ev.mean_auc > 0.8  # the synthetic embeddings contain the concept directions
        assert ev.nec == nec(model.coef_)
        assert ev.anec["5"] == anec_truncated(model, world["test"].X, world["test"].y, 5)
        assert any("ANEC truncates" in n for n in ev.notes)  # no training split to refit on
        tr = world["train"]
        refit = evaluate_concepts(model, world["test"].X, world["test"].y, annotations(world, "test"),
                                  train=(tr.X, tr.y))
        assert refit.anec["5"] == anec(model, world["test"].X, world["test"].y, 5, train=(tr.X, tr.y))
        assert set(ev.leakage) == {"soft", "hard", "leakage", "true"}
        assert "thresholds fitted on 'test' itself" in ev.notes[0]

    def test_names_that_do_not_match_are_reported_not_guessed(self, model, world):
        ann = from_array(world["test"].concepts, [f"other {i}" for i in range(12)])
        ev = evaluate_concepts(model, world["test"].X, world["test"].y, ann, leakage=False)
        assert ev.concepts == [] and "names did not match" in ev.notes[0]

    def test_wrong_row_count_says_how_to_align(self, model, world):
        with pytest.raises(ValueError, match=r"for_ids\(ids\)"):
            evaluate_concepts(model, world["test"].X, world["test"].y, annotations(world, "train"))

    def test_json_figure_and_summary(self, model, world):
        ev = evaluate_concepts(model, world["test"].X, world["test"].y, annotations(world, "test"),
                               interventions=["random", "coop"])
        d = json.loads(json.dumps(ev.to_dict()))
        assert d["n_annotated_concepts"] == 12 and set(d["interventions"]["policies"]) == {"random", "coop"}
        assert len(ev.figure().data[0].y) == 12
        text = ev.summary()
        assert "concept AUC" in text and "leakage" in text and "intervention curves" in text


def test_evaluate_splits_fits_thresholds_on_validation(model, world):
    anns = {s: annotations(world, s) for s in ("val", "test", "shifted")}
    splits = {s: {"X": world[s].X, "y": world[s].y} for s in anns}
    out = evaluate_splits(model, splits, anns, leakage=False)
    assert list(out) == ["val", "test", "shifted"]
    assert not [n for n in out["test"].notes if "threshold" in n]  # cut-offs come from val
    assert any("reference split" in n for n in out["val"].notes)
    th_val = fit_thresholds(model.transform(world["val"].X), anns["val"].matrix_for(model.concept_names_))
    np.testing.assert_allclose(out["test"].thresholds, th_val)
