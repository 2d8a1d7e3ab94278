"""Explore, Upload and Versions: "why not", concept evidence, reports, OOD warnings, kept state, revert."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import streamlit as st
from apptest_pages import open_page, page_text
from PIL import Image
from streamlit.testing.v1 import AppTest

from cbm.app import _cache, _keys
from cbm.io import list_versions, load_config, load_model, read_pointer


def _count_images(at: AppTest) -> int:
    return sum(type(e).__name__ == "Image" for e in at.main)


def _wrong_sample(at: AppTest, model_dir):
    at.selectbox(key=_keys.EXPLORE_CORRECT).select("wrong").run()
    i = at.session_state[_keys.EXPLORE_SAMPLE]
    split = at.session_state[_keys.SPLIT]
    return i, _cache.eval_data(model_dir)[split], _cache.predictions(load_model(model_dir), model_dir, split)


def _why_not_a_third_class(model_dir):
    """Explore on a wrong prediction, asked why not a class that is neither the true nor the predicted one:
    (app, sample, data, predictions, that class)."""
    at = open_page("explore")
    i, d, p = _wrong_sample(at, model_dir)
    other = next(c for c in load_model(model_dir).class_names_ if c not in (d.y[i], p.pred[i]))
    at.selectbox(key="explore_why_not").select(other).run()
    assert not at.exception, at.exception
    return at, i, d, p, other


class TestWhyNot:
    def test_defaults_to_the_true_class_of_a_wrong_prediction(self, model_dir):
        at = open_page("explore")
        i, d, p = _wrong_sample(at, model_dir)
        assert at.selectbox(key="explore_why_not").value == d.y[i]
        assert f"Why {p.pred[i]} and not another class?" in page_text(at)
        assert f"{p.pred[i]} and not {d.y[i]}" in page_text(at)

    def test_any_other_class_can_be_picked(self, model_dir):
        at, i, _, p, other = _why_not_a_third_class(model_dir)
        assert f"{p.pred[i]} and not {other}" in page_text(at)

    def test_a_new_sample_gets_its_own_default(self, model_dir):
        at, i, d, p, other = _why_not_a_third_class(model_dir)
        j = next(int(j) for j in np.flatnonzero(p.pred != d.y)
                 if j != i and p.pred[j] != other and d.y[j] != other)
        at.selectbox(key=_keys.EXPLORE_SAMPLE).set_value(j).run()
        assert at.selectbox(key="explore_why_not").value == d.y[j]


class TestEvidenceAndReport:
    def test_concept_score_with_its_percentile_among_training_images(self, model_dir):
        at = open_page("explore")
        model = load_model(model_dir)
        name = model.concept_names_[2]
        at.selectbox(key="explore_evidence").select(name).run()
        assert f"Score of **{name}** in this image" in page_text(at)
        assert re.search(r"higher than \*\*\d+%\*\* of the training images", page_text(at))

    def test_switching_concepts_off_says_what_changed(self, model_dir):
        at = open_page("explore")
        model = load_model(model_dir)
        at.multiselect(key=_keys.EXPLORE_OFF).set_value(model.concept_names_[:2]).run()
        assert "What changed:" in page_text(at)
        assert f"switching off **{model.concept_names_[0]}**" in page_text(at) or \
            f"switching off **{model.concept_names_[1]}**" in page_text(at)

    def test_download_offers_a_self_contained_report(self, model_dir):
        at = open_page("explore")
        buttons = at.get("download_button")
        assert len(buttons) == 1 and "Download this explanation" in buttons[0].proto.label

    def test_occlusion_map_uses_the_models_encoder(self, model_dir, monkeypatch):
        import cbm.encoders

        dim = load_model(model_dir).n_features_in_
        calls = []

        class Bright:
            def encode_images(self, images):
                calls.append(len(images))
                return np.stack([np.full(dim, np.asarray(im).mean() / 255, np.float32) for im in images])

        monkeypatch.setattr(cbm.encoders, "create_encoder", lambda name, **kw: Bright(), raising=False)
        st.cache_resource.clear()
        at = open_page("explore")
        n_images = _count_images(at)
        at.button(key="explore_occlude").click().run()
        assert not at.exception, at.exception
        assert sum(calls) > 4  # the image and its occluded copies went through the encoder
        assert _count_images(at) == n_images + 1
        assert "cannot be used here" not in page_text(at)


class TestExploreShowsOutOfDistribution:
    def test_the_sample_gets_its_score_with_scale_and_threshold(self, model_dir):
        at = open_page("explore")
        i, split = at.session_state[_keys.EXPLORE_SAMPLE], at.session_state[_keys.SPLIT]
        det = _cache.ood_detector(model_dir)
        score = float(det.score(_cache.eval_data(model_dir)[split].X[i:i + 1])[0])
        text = page_text(at)
        assert f"Out-of-distribution score {score:.1f} (Mahalanobis distance" in text
        assert f"the threshold {det.threshold_:.1f} flags 5% of validation images" in text


class TestKeptState:
    def test_filters_and_split_survive_a_visit_to_another_page(self, model_dir):
        at = open_page("explore")
        at.selectbox(key=_keys.SPLIT).select("shifted").run()
        at.selectbox(key=_keys.EXPLORE_CORRECT).select("wrong").run()
        at.switch_page("pages/model.py").run()
        at.switch_page("pages/explore.py").run()
        assert not at.exception, at.exception
        assert at.selectbox(key=_keys.EXPLORE_CORRECT).value == "wrong"
        assert at.session_state[_keys.SPLIT] == "shifted"

    def test_gallery_pages_through_all_matches(self, model_dir):
        at = open_page("explore")
        pager = at.number_input(key=_keys.EXPLORE_PAGE)
        pager.set_value(2).run()
        assert not at.exception, at.exception
        assert "Showing images 13-24 of" in page_text(at)

    def test_splits_are_named_in_plain_words(self, model_dir):
        at = open_page("explore")
        assert "shifted (new site)" in at.selectbox(key=_keys.SPLIT).options


def _png(color=(200, 10, 10), size=(28, 28)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class TestUploadWarnsOutOfDistribution:
    @pytest.fixture
    def encoder_returning(self, model_dir, monkeypatch):
        import cbm.encoders

        def use(vector):
            class Fixed:
                def encode_images(self, images):
                    return np.tile(np.asarray(vector, np.float32), (len(images), 1))

            monkeypatch.setattr(cbm.encoders, "create_encoder", lambda name, **kw: Fixed(), raising=False)
            st.cache_resource.clear()
        return use

    def _upload(self):
        at = open_page("upload")
        at.file_uploader(key=_keys.UPLOAD_FILE).upload("x.png", _png(), "image/png").run()
        assert not at.exception, at.exception
        return at

    def test_unlike_training_images_gets_a_warning(self, model_dir, encoder_returning):
        dim = load_model(model_dir).n_features_in_
        encoder_returning(np.random.default_rng(5).standard_normal(dim) * 50)
        at = self._upload()
        assert "unlike the images the model was trained on" in at.warning[0].value
        assert "Predicted:" in page_text(at)

    def test_a_training_like_image_gets_none(self, model_dir, encoder_returning):
        with np.load(model_dir / "data.npz") as z:
            encoder_returning(z["X_test"][0])
        at = self._upload()
        assert not at.warning
        assert "looks like the training images" in page_text(at)


class TestVersionsPage:
    def _two_versions(self, model_dir, moving_prune):
        from cbm.edits import Prune
        from cbm.edits.history import EditSession

        s = EditSession(model_dir)
        s.apply(Prune(*moving_prune), why="the tag is a spurious cue")
        s.save(note="pruned the tag")

    def test_lists_versions_with_notes_and_why(self, model_dir, moving_prune):
        self._two_versions(model_dir, moving_prune)
        at = open_page("versions")
        table = at.dataframe[0].value
        assert list(table["version"]) == list_versions(model_dir)
        assert "pruned the tag" in set(table["note"])
        assert list(table["edits"]) == [0, 1]
        cls, concept = moving_prune
        said = f"**Version 2:** prune “{concept}” for {cls} (its weight set to 0) — why: the tag is a spurious cue"
        assert said in page_text(at)  # in words, and the why in full

    def test_compare_shows_weights_and_accuracy(self, model_dir, moving_prune):
        self._two_versions(model_dir, moving_prune)
        at = open_page("versions")
        assert "1 weight(s) differ" in page_text(at)
        weights = at.dataframe[1].value
        assert (weights["class"] == moving_prune[0]).all() and (weights["concept"] == moving_prune[1]).all()
        acc = at.dataframe[2].value
        assert "shifted (new site)" in set(acc["split"])
        assert (acc["accuracy v1"] != acc["accuracy v2"]).any()

    def test_revert_makes_version_1_current(self, model_dir, moving_prune):
        self._two_versions(model_dir, moving_prune)
        at = open_page("versions")
        at.selectbox(key=_keys.VERSION_REVERT).select(1)
        at.button(key=f"{_keys.VERSION_REVERT}_go").click().run()
        assert not at.exception, at.exception
        current = read_pointer(model_dir)["current"]
        assert current == 3 and load_config(model_dir, current).get("reverted_from") == 1
        assert "Version 1 is current again, saved as version 3." in page_text(at)
        np.testing.assert_array_equal(load_model(model_dir).coef_, load_model(model_dir, 1).coef_)
