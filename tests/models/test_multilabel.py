"""Multi-label findings: an indicator matrix in, a sigmoid per finding out, each finding explained by
its own planted concepts, and AUROC / AP / sensitivity per finding."""

import numpy as np
import pytest
from findings_world import FINDINGS, NAMES, PLANTED, prior_bank, world
from sklearn.preprocessing import MultiLabelBinarizer

from cbm.explain import contributions, explain
from cbm.models import create_model
from cbm.models.multilabel import MultiLabelCBM, check_indicator, finding_report


@pytest.fixture(scope="module")
def pcbm():
    X, Y, bank = world(600, 1)
    model = MultiLabelCBM(create_model("pcbm", concepts=bank), finding_names=FINDINGS).fit(X, Y)
    return model, bank


def test_multi_label_pcbm_recovers_each_findings_planted_concepts(pcbm):
    model, _ = pcbm
    assert model.coef_.shape == (3, len(NAMES)) and model.class_names_ == FINDINGS
    for j, finding in enumerate(FINDINGS):
        w = model.coef_[j]
        top2 = {NAMES[i] for i in np.argsort(-w)[:2]}
        assert top2 == PLANTED[finding], (finding, dict(zip(NAMES, w.round(2), strict=True)))
        others = [abs(w[i]) for i, n in enumerate(NAMES) if n not in PLANTED[finding]]
        assert min(w[NAMES.index(c)] for c in PLANTED[finding]) > 2 * max(others)


def test_one_sigmoid_per_finding_and_metrics_per_finding(pcbm):
    model, _ = pcbm
    X, Y, _ = world(400, 2)
    P = model.predict_proba(X)
    assert P.shape == (400, 3) and ((P >= 0) & (P <= 1)).all()
    assert not np.allclose(P.sum(1), 1)  # not a softmax: several findings at once
    both = (Y[:, 0] == 1) & (Y[:, 1] == 1)
    assert (model.predict(X)[both][:, :2] == 1).mean() > 0.8
    report = finding_report(Y, P, model.class_names_, specificity=0.9)
    assert report["finding"].tolist() == FINDINGS
    assert (report["auroc"] > 0.9).all() and (report["average_precision"] > 0.8).all()
    assert (report["sensitivity_at_0.9_specificity"] > 0.7).all()
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-model.decision_function(X))), rtol=1e-5)


def test_each_finding_is_explained_by_name(pcbm):
    model, _ = pcbm
    X, Y, _ = world(50, 3)
    A = model.transform(X)
    i = int(np.flatnonzero(Y[:, 2] == 1)[0])
    contrib, _ = contributions(model, A[i], target="nodule")
    z = model.decision_function(X[i:i + 1])[0, 2]
    assert contrib.sum() + model.intercept_[2] == pytest.approx(z, abs=1e-4)
    top = NAMES[int(np.argmax(contrib))]
    assert top in PLANTED["nodule"]
    e = explain(model, X[:5], target="cardiomegaly", top=2)
    assert (e.target == 1).all() and e.contributions.shape == (5, len(NAMES))


def test_the_linear_probe_takes_multilabelbinarizer_output():
    X, Y, _ = world(400, 4)
    findings = [[FINDINGS[j] for j in np.flatnonzero(row)] for row in Y]
    mlb = MultiLabelBinarizer(classes=FINDINGS)
    model = MultiLabelCBM(finding_names=mlb.classes).fit(X[:300], mlb.fit_transform(findings[:300]))
    report = finding_report(mlb.transform(findings[300:]), model.predict_proba(X[300:]), FINDINGS)
    assert (report["auroc"] > 0.9).all()
    assert model.concept_names_[0] == "feature 0"


def test_bad_targets_are_refused_with_the_finding_named():
    X, Y, _ = world(60, 5)
    with pytest.raises(ValueError, match="binary indicator matrix"):
        MultiLabelCBM().fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="must be 0 or 1; found 2"):
        check_indicator(Y * 2)
    Y[:, 1] = 0
    with pytest.raises(ValueError, match="'cardiomegaly' is absent in every training sample"):
        MultiLabelCBM(finding_names=FINDINGS).fit(X, Y)
    with pytest.raises(ValueError, match="finding_names has 2 names but Y has 3 columns"):
        MultiLabelCBM(finding_names=FINDINGS[:2]).fit(X, Y)
    with pytest.raises(ValueError, match="hybrid"):
        MultiLabelCBM(create_model("pcbm-h", concepts=world(10, 0)[2])).fit(X, world(60, 6)[1])


def test_a_finding_without_both_outcomes_gets_nan_metrics():
    report = finding_report(np.array([[1, 0], [1, 1], [1, 0]]), np.full((3, 2), 0.5), ["a", "b"])
    assert np.isnan(report.loc[0, "auroc"]) and report.loc[1, "n_positive"] == 1


def test_weight_edits_act_on_one_finding_and_undo_exactly(pcbm):
    from cbm.edits import Prune, RemoveConcept
    from cbm.exceptions import EditError

    model, _ = pcbm
    X, _, _ = world(200, 7)
    before, coef = model.predict_proba(X), model.coef_.copy()
    record = Prune("nodule", "round spot").apply(model)
    after = model.predict_proba(X)
    np.testing.assert_array_equal(after[:, :2], before[:, :2])  # other findings untouched
    assert after[:, 2].mean() < before[:, 2].mean()
    record.undo(model)
    np.testing.assert_array_equal(model.coef_, coef)
    with pytest.raises(EditError, match="prune it for every finding"):
        RemoveConcept("rib").apply(model)
    np.testing.assert_array_equal(model.coef_, coef)


@pytest.mark.parametrize("method", ["pcbm", "linear-probe", "knobo"])
def test_a_saved_multi_label_model_loads_with_identical_probabilities(method, tmp_path):
    from cbm.io import load_config, load_model, save_model

    X, Y, bank = world(400, 8)
    base = create_model(method) if method == "linear-probe" else create_model(method, concepts=prior_bank(bank))
    model = MultiLabelCBM(base, finding_names=FINDINGS).fit(X, Y)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, MultiLabelCBM) and loaded.method == method
    assert loaded.class_names_ == FINDINGS and loaded.concept_names_ == model.concept_names_
    X2, _, _ = world(100, 9)
    np.testing.assert_array_equal(loaded.predict_proba(X2), model.predict_proba(X2))
    assert load_config(tmp_path / "m")["multilabel"] is True


def test_knobo_grounds_shared_concepts_from_the_prior_over_findings():
    X, Y, bank = world(600, 10)
    model = MultiLabelCBM(create_model("knobo", concepts=prior_bank(bank)), finding_names=FINDINGS).fit(X, Y)
    for j, finding in enumerate(FINDINGS):
        top2 = {model.concept_names_[i] for i in np.argsort(-model.coef_[j])[:2]}
        assert top2 == PLANTED[finding]
    X2, Y2, _ = world(300, 11)
    assert (finding_report(Y2, model.predict_proba(X2), FINDINGS)["auroc"] > 0.95).all()


def test_knobo_without_concept_labels_or_a_prior_over_the_findings_is_refused_with_a_hint():
    X, Y, bank = world(200, 12)
    with pytest.raises(ValueError, match="concept_labels"):
        MultiLabelCBM(create_model("knobo", concepts=bank), finding_names=FINDINGS).fit(X, Y)
