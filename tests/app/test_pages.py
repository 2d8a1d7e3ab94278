"""Each app page renders on a small model directory, and its widgets drive what is shown."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from apptest_pages import TIMEOUT, open_page, page_text
from PIL import Image
from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY, _cache, _keys
from cbm.io import load_model


class TestModelDirProblems:
    def test_missing_directory_says_what_to_do(self, tmp_path, monkeypatch):
        monkeypatch.setenv("CBM_MODEL_DIR", str(tmp_path / "nope"))
        at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
        assert not at.exception
        assert "does not exist" in at.error[0].value
        assert "cbm demo" in at.info[0].value

    def test_foreign_directory_is_named(self, tmp_path, monkeypatch):
        monkeypatch.setenv("CBM_MODEL_DIR", str(tmp_path))
        at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
        assert "model.json is missing" in at.error[0].value


class TestModelPage:
    def test_shows_method_classes_and_accuracy(self, model_dir):
        at = open_page()
        model = load_model(model_dir)
        text = page_text(at)
        assert all(c in text for c in model.class_names_)
        assert model.method in text
        labels = [m.label for m in at.metric]
        assert "Accuracy (shifted)" in labels and "Non-zero weights" in labels

    def test_concept_filter_narrows_the_heatmap(self, model_dir):
        at = open_page()
        at.text_input(key=_keys.MODEL_FILTER).input("no such concept").run()
        assert "No class or concept matches the filters." in [i.value for i in at.info]


class TestExplorePage:
    def test_filters_and_open_a_sample(self, model_dir):
        at = open_page("explore")
        at.selectbox(key=_keys.EXPLORE_CORRECT).select("wrong").run()
        assert not at.exception
        at.button(key="explore_open_1").click().run()
        picked = at.session_state[_keys.EXPLORE_SAMPLE]
        data = _cache.eval_data(model_dir)[at.session_state[_keys.SPLIT]]
        preds = _cache.predictions(load_model(model_dir), model_dir, at.session_state[_keys.SPLIT])
        assert preds.pred[picked] != data.y[picked]
        assert f"Predicted: {preds.pred[picked]}" in page_text(at)

    def test_counterfactual_reports_new_prediction(self, model_dir):
        at = open_page("explore")
        model = load_model(model_dir)
        at.multiselect(key=_keys.EXPLORE_OFF).set_value(model.concept_names_[:3]).run()
        assert not at.exception
        assert "New prediction:" in page_text(at)

    def test_no_match_is_explained(self, model_dir):
        at = open_page("explore")
        model = load_model(model_dir)
        at.selectbox(key=_keys.EXPLORE_CLASS).select(model.class_names_[0])
        at.selectbox(key=_keys.EXPLORE_PRED).select(model.class_names_[1])
        at.selectbox(key=_keys.EXPLORE_CORRECT).select("correct").run()
        assert "No image matches these filters; widen them." in [i.value for i in at.info]


class TestConceptsPage:
    def test_search_and_provenance(self, model_dir):
        at = open_page("concepts")
        name = load_model(model_dir).concept_names_[-1]
        at.text_input(key=_keys.CONCEPT_QUERY).input(name[:6]).run()
        assert name in at.selectbox(key=_keys.CONCEPT_PICK).options
        at.selectbox(key=_keys.CONCEPT_PICK).select(name).run()
        assert not at.exception
        assert at.subheader[0].value == name

    def test_gallery_ranks_by_activation(self, model_dir):
        from cbm.app.pages.concepts import ranked

        A = np.array([[0.1, 2.0], [0.9, -1.0], [0.5, 0.0]], np.float32)
        assert list(ranked(A, 0, 2, largest=True)) == [1, 2]
        assert list(ranked(A, 1, 1, largest=False)) == [1]


def _png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


class TestUploadPage:
    def test_prompts_for_an_image(self, model_dir):
        at = open_page("upload")
        assert "Upload an image" in at.info[0].value

    def test_missing_encoder_record_is_explained(self, model_dir):
        import json

        cfg_file = next(Path(model_dir).glob("v*/config.json"))
        cfg = json.loads(cfg_file.read_text())
        cfg["fingerprints"] = {}
        cfg_file.write_text(json.dumps(cfg))
        at = open_page("upload")
        assert "does not name the image encoder" in at.info[0].value


class _FakeEncoder:
    """Stands in for the recorded image encoder: a fixed embedding of the model's dimension."""

    def __init__(self, dim: int):
        self.dim = dim

    def encode_images(self, images):
        return np.random.default_rng(1).standard_normal((len(images), self.dim)).astype(np.float32)


class TestUploadPredicts:
    @pytest.fixture(autouse=True)
    def _fake_encoder(self, model_dir, monkeypatch):
        import cbm.encoders

        dim = load_model(model_dir).n_features_in_
        self.calls = []

        def create_encoder(name, **kwargs):
            self.calls.append((name, kwargs))
            return _FakeEncoder(dim)

        monkeypatch.setattr(cbm.encoders, "create_encoder", create_encoder, raising=False)
        st.cache_resource.clear()

    def test_image_gets_prediction_with_the_recorded_encoder(self, model_dir):
        at = open_page("upload")
        at.file_uploader(key=_keys.UPLOAD_FILE).upload("red.png", _png(), "image/png").run()
        assert not at.exception, at.exception
        assert "Predicted:" in page_text(at)
        assert self.calls == [("synthetic", {"pretrained": None, "image_size": 28})]  # via cbm.explain.encoder_for

    @pytest.mark.parametrize("content, message", [
        (b"hello, not an image", "is not an image file"),
        (_png((64, 64))[:60], "damaged or truncated"),
        (b"", "is empty"),
    ])
    def test_bad_upload_gets_one_clear_message(self, model_dir, content, message):
        at = open_page("upload")
        at.file_uploader(key=_keys.UPLOAD_FILE).upload("bad.png", content, "image/png").run()
        assert not at.exception, at.exception
        assert message in at.error[0].value
        assert "Predicted:" not in page_text(at)


def _shifted_accuracy(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Accuracy (shifted)")


class TestEditPage:
    def test_the_page_starts_with_the_edits_the_library_suggests(self, model_dir):
        from cbm.edits.preview import load_evalsets, suggest_edits

        at = open_page("edit")
        model = load_model(model_dir)
        expected = suggest_edits(model, load_evalsets(model, model_dir / "data.npz"), top=8)
        assert len(expected), "the fixture world has a spurious concept to suggest"
        assert at.subheader[0].value == "Suggested edits to review"
        shown = at.dataframe[0].value
        assert list(shown["concept"]) == list(expected["concept"])

    def test_preview_reports_every_split(self, model_dir):
        at = open_page("edit")
        model = load_model(model_dir)
        k = 0
        j = int(np.argmax(np.abs(model.coef_[k])))
        at.selectbox(key=_keys.EDIT_CLASS).select(model.class_names_[k])
        at.selectbox(key=_keys.EDIT_CONCEPT).select(model.concept_names_[j]).run()
        at.button(key=_keys.EDIT_PREVIEW).click().run()
        assert not at.exception, at.exception
        shown = next(df.value for df in at.dataframe if "group" in df.value.columns)
        assert {"test", "shifted", "train"} <= set(shown["split"])
        assert "domain=shifted" not in set(shown["group"])  # one domain per split here
        assert any(g.startswith("class=") for g in shown["group"])

    def test_picking_an_edit_computes_nothing_until_preview_is_pressed(self, model_dir, moving_prune,
                                                                       monkeypatch):
        from cbm.edits import report

        calls = []
        real = report.preview_with_baselines

        def counted(*args, **kwargs):
            calls.append(args[1])
            return real(*args, **kwargs)

        monkeypatch.setattr(report, "preview_with_baselines", counted)
        st.cache_resource.clear()  # an earlier test's cached preview of this edit would hide the call
        at = open_page("edit")
        at.selectbox(key=_keys.EDIT_CLASS).select(moving_prune[0])
        at.selectbox(key=_keys.EDIT_CONCEPT).select(moving_prune[1]).run()
        assert not at.exception, at.exception
        assert calls == [] and "Verdict." not in page_text(at)
        assert "Press **Preview**" in page_text(at)
        at.button(key=_keys.EDIT_PREVIEW).click().run()
        assert not at.exception, at.exception
        assert len(calls) == 1 and "Verdict." in page_text(at)
        at.text_input(key=_keys.EDIT_WHY).input("a rerun keeps the preview").run()
        assert len(calls) == 1 and "Verdict." in page_text(at)
        assert at.button(key=_keys.EDIT_PREVIEW).disabled
        at.button(key=_keys.EDIT_APPLY).click().run()  # the head changed: this preview no longer applies
        assert "Verdict." not in page_text(at)
        at.button(key=_keys.EDIT_UNDO).click().run()  # back on the previewed head: shown again, not recomputed
        assert len(calls) == 1 and "Verdict." in page_text(at)

    def test_the_app_and_the_cli_give_the_same_verdict_for_the_same_edit(self, model_dir, moving_prune, capsys):
        from cbm.cli import main

        cls, concept = moving_prune
        assert main(["edit", str(model_dir), "preview", "prune", "--class", cls, "--concept", concept]) == 0
        printed = [ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("verdict: ")]
        at = open_page("edit")
        at.selectbox(key=_keys.EDIT_CLASS).select(cls)
        at.selectbox(key=_keys.EDIT_CONCEPT).select(concept).run()
        at.button(key=_keys.EDIT_PREVIEW).click().run()
        assert not at.exception, at.exception
        shown = [m.value.removeprefix("**Verdict.** ") for m in at.markdown if m.value.startswith("**Verdict.**")]
        assert len(printed) == 1 and len(shown) == 1
        assert printed[0].removeprefix("verdict: ") == shown[0]

    def test_apply_changes_metrics_and_undo_restores_them(self, model_dir, moving_prune):
        from cbm.edits.history import EditSession

        at = open_page("edit")
        before = _shifted_accuracy(at)
        at.selectbox(key=_keys.EDIT_CLASS).select(moving_prune[0])
        at.selectbox(key=_keys.EDIT_CONCEPT).select(moving_prune[1]).run()
        at.button(key=_keys.EDIT_APPLY).click().run()
        assert not at.exception, at.exception
        assert _shifted_accuracy(at) != before
        assert at.success[0].value == f"Applied: prune “{moving_prune[1]}” for {moving_prune[0]} (its weight set to 0)"
        assert len(EditSession(model_dir).pending) == 1  # on disk, not only in session_state
        at.button(key=_keys.EDIT_UNDO).click().run()
        assert _shifted_accuracy(at) == before
        assert EditSession(model_dir).pending == []

    def test_pending_edit_survives_a_new_browser_session(self, model_dir, moving_prune):
        from cbm.edits import Prune
        from cbm.edits.history import EditSession

        at = open_page("edit")
        before = _shifted_accuracy(at)
        EditSession(model_dir).apply(Prune(*moving_prune))  # e.g. from `cbm edit` or another tab
        at = open_page("edit")
        assert _shifted_accuracy(at) != before
        assert "1 unsaved edit(s)" in page_text(at)

    def test_the_audit_trail_names_who_edited(self, model_dir, moving_prune):
        from cbm.edits import Prune
        from cbm.edits.history import EditSession

        EditSession(model_dir, user="dr.app").apply(Prune(*moving_prune), why="spurious tag")
        at = open_page("edit")
        assert not at.exception, at.exception
        assert any(e.label.startswith("Audit trail") for e in at.expander)
        trail = next(df.value for df in at.dataframe if "who" in df.value.columns)
        assert trail["who"].tolist() == ["dr.app"] and trail["why"].tolist() == ["spurious tag"]

    def test_apply_asks_for_the_why_and_logs_it(self, model_dir, moving_prune, monkeypatch):
        from cbm.edits.history import EditSession

        monkeypatch.setenv("CBM_USER", "dr.tab")
        at = open_page("edit")
        at.selectbox(key=_keys.EDIT_CLASS).select(moving_prune[0])
        at.selectbox(key=_keys.EDIT_CONCEPT).select(moving_prune[1]).run()
        at.text_input(key=_keys.EDIT_WHY).input("hospital tag, not anatomy").run()
        at.button(key=_keys.EDIT_APPLY).click().run()
        assert not at.exception, at.exception
        trail = EditSession(model_dir).audit_trail()
        assert trail[["action", "who", "why"]].values.tolist() == [
            ["edit", "dr.tab", "hospital tag, not anatomy"]]
