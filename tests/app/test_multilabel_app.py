"""The app on a multi-label model (several findings per image): every page opens; Explore shows each
finding's probability and presence call and, for the finding picked, the same contributions as
:func:`cbm.explain.contributions`; unusual scans are flagged; pages that do not apply say so."""

from __future__ import annotations

import numpy as np
import pytest
from apptest_pages import open_page, page_text
from findings_model import N_ODD, build_findings_dir
from findings_world import FINDINGS, PLANTED
from streamlit.testing.v1 import AppTest

from cbm.app import _keys
from cbm.explain import contributions
from cbm.io import load_model
from cbm.models.multilabel import PRESENT_THRESHOLD, finding_report


@pytest.fixture(scope="module")
def _findings_template(tmp_path_factory):
    return build_findings_dir(tmp_path_factory.mktemp("findings") / "model")


@pytest.fixture
def findings_dir(_findings_template, tmp_path, monkeypatch):
    """A fresh copy of the multi-label model directory, passed to the app via CBM_MODEL_DIR."""
    import shutil

    path = tmp_path / "model"
    shutil.copytree(_findings_template, path)
    monkeypatch.setenv("CBM_MODEL_DIR", str(path))
    return path


def _test_split(path):
    with np.load(path / "data.npz") as z:
        return z["X_test"], z["y_test"]


def _show(at: AppTest, row: int) -> AppTest:
    at.selectbox(key=_keys.SPLIT).select("test").run()
    at.selectbox(key=_keys.EXPLORE_SAMPLE).set_value(row).run()
    assert not at.exception, at.exception
    return at


def test_model_page_names_the_findings_and_their_auroc(findings_dir):
    at = open_page()
    text = page_text(at)
    assert "Looks for 3 findings" in text and "several findings (or none) can be present" in text
    assert "classes" not in text.split("Looks for")[1].split("\n")[0]
    model = load_model(findings_dir)
    X, Y = _test_split(findings_dir)
    mean = finding_report(Y, model.predict_proba(X), FINDINGS)["auroc"].mean()
    tile = next(m for m in at.metric if m.label == "Mean AUROC (test)")
    assert tile.value == f"{mean:.3f}"
    assert "Concepts per finding" in [m.label for m in at.metric]


def test_explore_shows_each_findings_probability_and_presence(findings_dir):
    model = load_model(findings_dir)
    X, Y = _test_split(findings_dir)
    row = int(np.flatnonzero(Y.sum(1) == 2)[0])  # two findings truly present at once
    at = _show(open_page("explore"), row)
    table = at.dataframe[0].value.set_index("finding")
    proba = model.predict_proba(X[row:row + 1])[0]
    for k, finding in enumerate(FINDINGS):
        assert table.loc[finding, "probability"] == pytest.approx(float(proba[k]), abs=1e-6)
        assert table.loc[finding, "called present"] == ("yes" if proba[k] >= PRESENT_THRESHOLD else "no")
        assert table.loc[finding, "truly present"] == ("yes" if Y[row, k] else "no")
    called = [f for k, f in enumerate(FINDINGS) if proba[k] >= PRESENT_THRESHOLD]
    assert len(called) == 2
    assert f"Findings called present: {', '.join(called)}" in page_text(at)


def test_picking_a_finding_shows_the_librarys_contributions_for_it(findings_dir):
    model = load_model(findings_dir)
    X, Y = _test_split(findings_dir)
    row = int(np.flatnonzero(Y.sum(1) == 2)[0])
    at = _show(open_page("explore"), row)
    A = model.transform(X[row:row + 1])[0]
    for finding in FINDINGS:
        at.selectbox(key=f"explore_{_keys.FINDING}").select(finding).run()
        assert not at.exception, at.exception
        shown = at.dataframe[1].value.set_index("concept")["contribution"]
        expected, _ = contributions(model, A, target=finding)
        np.testing.assert_allclose([shown[c] for c in model.concept_names_], expected, atol=1e-6)
        assert f"Why {finding}" in str(at.get("plotly_chart")[1].proto.spec)
        top = shown.abs().sort_values(ascending=False).index[0]
        if Y[row, FINDINGS.index(finding)]:
            assert top in PLANTED[finding]  # a present finding is explained by its own concepts


def test_filters_by_true_and_called_finding(findings_dir):
    at = open_page("explore")
    at.selectbox(key=_keys.SPLIT).select("test").run()
    at.selectbox(key=_keys.EXPLORE_CLASS).select("nodule").run()
    _, Y = _test_split(findings_dir)
    options = at.selectbox(key=_keys.EXPLORE_SAMPLE).options
    assert len(options) == int(Y[:, 2].sum())
    assert all("nodule" in o.split("->")[0] for o in options)
    at.selectbox(key=_keys.EXPLORE_CORRECT).select("wrong").run()
    assert not at.exception, at.exception


def test_an_unusual_scan_is_flagged_next_to_its_findings(findings_dir):
    X, _ = _test_split(findings_dir)
    at = _show(open_page("explore"), len(X) - N_ODD)
    assert "unlike the images the model was trained on" in at.warning[0].value
    at = _show(at, 0)
    assert not at.warning


def test_switching_a_concept_off_gives_each_findings_new_probability(findings_dir):
    model = load_model(findings_dir)
    X, Y = _test_split(findings_dir)
    row = int(np.flatnonzero(Y[:, 0] == 1)[0])
    at = _show(open_page("explore"), row)
    off = sorted(PLANTED["effusion"])
    at.multiselect(key=_keys.EXPLORE_OFF).set_value(off).run()
    table = at.dataframe[-1].value.set_index("finding")
    A = model.transform(X[row:row + 1])
    A[:, [model.concept_names_.index(c) for c in off]] = 0
    z = model.logits_from_activations(A)[0]
    np.testing.assert_allclose(table["with them off"].to_numpy(), 1 / (1 + np.exp(-z)), atol=1e-5)
    assert table.loc["effusion", "with them off"] < table.loc["effusion", "now"]


def test_pages_that_do_not_apply_say_so_in_one_sentence(findings_dir):
    at = open_page("discover")
    assert "not available for multi-label models" in at.info[0].value
    for page in ("concepts", "versions"):
        open_page(page)
    at = open_page("edit")
    kinds = at.radio(key=_keys.EDIT_KIND).options
    assert len(kinds) == 3 and all(k.startswith(("Prune", "Set the weight")) for k in kinds)
    assert "not available for multi-label models yet" in page_text(at)
    assert "Mean AUROC (test)" in [m.label for m in at.metric]


def test_a_prune_is_previewed_per_finding_and_applied(findings_dir):
    at = open_page("edit")
    at.selectbox(key=_keys.EDIT_CLASS).select("nodule").run()
    at.selectbox(key=_keys.EDIT_CONCEPT).select("round spot").run()
    at.button(key=_keys.EDIT_PREVIEW).click().run()
    assert not at.exception, at.exception
    assert "The edit moves 'nodule' most" in page_text(at)
    per_finding = next(df.value for df in at.dataframe if "finding" in df.value.columns)
    assert per_finding["finding"].iloc[0] == "nodule"
    at.button(key=_keys.EDIT_APPLY).click().run()
    assert not at.exception, at.exception
    model = load_model(findings_dir)
    assert at.success and "Applied" in at.success[0].value
    from cbm.edits.history import EditSession

    assert EditSession(findings_dir).model.coef_[2, model.concept_names_.index("round spot")] == 0


def test_an_uploaded_scan_gets_each_findings_probability(findings_dir, monkeypatch):
    import io

    import streamlit as st
    from PIL import Image

    import cbm.encoders

    X, _ = _test_split(findings_dir)

    class Fixed:
        def encode_images(self, images):
            return np.tile(X[0], (len(images), 1))

    monkeypatch.setattr(cbm.encoders, "create_encoder", lambda name, **kw: Fixed(), raising=False)
    st.cache_resource.clear()
    buf = io.BytesIO()
    Image.new("RGB", (28, 28), (90, 90, 90)).save(buf, format="PNG")
    at = open_page("upload")
    at.file_uploader(key=_keys.UPLOAD_FILE).upload("scan.png", buf.getvalue(), "image/png").run()
    assert not at.exception, at.exception
    proba = load_model(findings_dir).predict_proba(X[:1])[0]
    table = at.dataframe[0].value.set_index("finding")
    np.testing.assert_allclose([table.loc[f, "probability"] for f in FINDINGS], proba, atol=1e-6)
    assert "looks like the training images" in page_text(at)


def test_versions_compare_by_mean_auroc(findings_dir):
    from cbm.edits import Prune
    from cbm.edits.history import EditSession

    s = EditSession(findings_dir)
    s.apply(Prune("nodule", "round spot"), why="a marker artifact")
    s.save(note="pruned round spot")
    at = open_page("versions")
    compare = next(t.value for t in at.dataframe if "split" in t.value.columns)
    assert list(compare.columns) == ["split", "mean AUROC v1", "mean AUROC v2"]
    assert (compare["mean AUROC v2"] <= compare["mean AUROC v1"]).all()
