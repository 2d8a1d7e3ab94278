"""Contrastive explanations, intervention effects and concept evidence on the image."""

import numpy as np
import pytest
import torch
from PIL import Image

from cbm import explain as ex
from cbm.data import make_concept_world
from cbm.models.baselines import LinearProbe


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=16, random_state=0)


@pytest.fixture(scope="module")
def model(world):
    return LinearProbe().fit(world["train"].X, np.asarray(world.class_names)[world["train"].y])


def test_contrast_contributions_add_up_to_the_margin(model, world):
    A = model.transform(world["test"].X)
    for i in range(10):
        c = ex.contrast(model, A[i])
        z = model.logits_from_activations(A[i:i + 1])[0]
        assert c.a == model.class_names_[int(z.argmax())]
        assert c.b != c.a and c.margin >= 0
        assert c.table["contribution"].sum() + c.intercept == pytest.approx(c.margin, abs=1e-4)
        assert list(c.table["contribution"].abs()) == sorted(c.table["contribution"].abs(), reverse=True)


def test_contrast_defaults_to_the_true_class_when_the_prediction_is_wrong(model, world):
    A = model.transform(world["shifted"].X)
    names = np.asarray(model.class_names_)
    pred = names[model.logits_from_activations(A).argmax(1)]
    y = names[world["shifted"].y]
    wrong = np.flatnonzero(pred != y)
    assert len(wrong), "the shifted split should hold a misclassified sample"
    i = int(wrong[0])
    c = ex.contrast(model, A[i], true=y[i])
    assert (c.a, c.b) == (pred[i], y[i])
    assert f"{pred[i]} and not {y[i]}" in c.summary()


def test_flip_closes_the_margin_exactly(model, world):
    a = model.transform(world["test"].X[:1])[0]
    c = ex.contrast(model, a)
    f = c.flips.iloc[0]
    new = ex.intervene(model, a, {f.concept: float(f.needed)}).logits_after[0]
    ka, kb = model.class_names_.index(c.a), model.class_names_.index(c.b)
    assert new[ka] == pytest.approx(new[kb], abs=1e-3)
    assert list(c.flips["change"].abs()) == sorted(c.flips["change"].abs())


class ProbabilityProbe(LinearProbe):
    """A linear probe on sigmoid activations, standing in for probability models such as KnoBo."""

    activation_range = (0.0, 1.0)

    def _activations(self, X):
        return torch.sigmoid(X)


def test_flips_of_a_probability_model_stay_in_0_1_and_still_flip(world):
    names = np.asarray(world.class_names)
    prob = ProbabilityProbe().fit(world["train"].X, names[world["train"].y])
    A = prob.transform(world["test"].X)
    unbounded_out_of_range = 0
    for i in range(len(A)):
        for b in prob.class_names_:
            c = ex.contrast(prob, A[i], None, b)
            if c.a == c.b or c.margin <= 0:
                continue
            assert c.flips["needed"].between(0.0, 1.0).all(), c.flips
            for f in c.flips.itertuples():
                new = ex.intervene(prob, A[i], {f.concept: float(f.needed)}).logits_after[0]
                ka, kb = prob.class_names_.index(c.a), prob.class_names_.index(c.b)
                assert new[kb] >= new[ka] - 1e-3
            dw = prob.coef_[prob.class_names_.index(c.a)] - prob.coef_[prob.class_names_.index(c.b)]
            needed = A[i] - c.margin / dw
            unbounded_out_of_range += int(((needed < 0) | (needed > 1)).sum())
    assert unbounded_out_of_range, "some unbounded flips should have left [0, 1], or this test checks nothing"


def test_flips_of_an_unbounded_model_stay_in_the_training_range(model, world):
    ref = model.transform(world["train"].X)
    lo, hi = ex.concept_bounds(model, ref)
    np.testing.assert_allclose(lo, ref.min(0))
    A = model.transform(world["test"].X)
    for i in range(20):
        c = ex.contrast(model, A[i], reference=ref)
        j = [model.concept_names_.index(n) for n in c.flips["concept"]]
        assert (c.flips["needed"].to_numpy() >= lo[j] - 1e-9).all()
        assert (c.flips["needed"].to_numpy() <= hi[j] + 1e-9).all()
    assert np.isinf(ex.concept_bounds(model)[1]).all()  # no training activations: no bound
    with pytest.raises(ValueError, match="reference"):
        ex.concept_bounds(model, ref[:, :2])


@pytest.fixture()
def three_classes():
    """A hand-set head: activations (1, 0); raising concept 1 lifts c faster than b."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] * 4, np.float32)
    m = LinearProbe().fit(X, np.array(["a", "b", "c"] * 4))
    m.coef_ = np.array([[0.5, 0.0], [0.0, 1.0], [0.0, 1.5]], np.float32)
    m.intercept_ = np.zeros(3, np.float32)
    return m


def test_a_flip_that_ends_in_a_third_class_says_so(three_classes):
    c = ex.contrast(three_classes, np.array([1.0, 0.0], np.float32), "a", "b")
    f = c.flips.iloc[0]
    assert (f.concept, f.needed, f.new_prediction) == ("feature 1", pytest.approx(0.5), "c")
    text = c.summary()
    assert "the prediction would become c, neither a nor b" in text


def test_a_flip_outside_the_range_is_not_offered(three_classes):
    ref = np.array([[0.0, 0.0], [1.0, 0.4]], np.float32)  # concept 1 never exceeds 0.4 in training
    c = ex.contrast(three_classes, np.array([1.0, 0.0], np.float32), "a", "b", reference=ref)
    assert list(c.flips["concept"]) == ["feature 0"]
    assert c.flips.iloc[0].new_prediction == "b"
    assert "the prediction would then be b" in c.summary()
    none = ex.contrast(three_classes, np.array([1.0, 0.0], np.float32), "a", "b",
                       reference=np.array([[0.6, 0.0], [1.0, 0.4]], np.float32))
    assert none.flips.empty and "No single concept change within its possible range" in none.summary()


def test_contrast_with_any_pair_and_unknown_class(model, world):
    a = model.transform(world["test"].X[:1])[0]
    c = ex.contrast(model, a, model.class_names_[2], model.class_names_[0])
    assert (c.a, c.b) == (model.class_names_[2], model.class_names_[0])
    with pytest.raises(Exception, match="closest|class"):
        ex.contrast(model, a, "no such class")


def test_intervention_effects_name_the_concept_even_when_the_prediction_holds(model, world):
    a = model.transform(world["test"].X[:1])[0]
    name = model.concept_names_[0]
    eff = ex.intervention_effects(model, a, {name: float(a[0]) + 0.01})
    assert set(eff["concept"]) == {name} and len(eff) == len(model.class_names_)
    np.testing.assert_allclose(eff.set_index("class").loc[model.class_names_, "score_change"],
                               0.01 * model.coef_[:, 0], rtol=1e-2, atol=1e-5)


def test_concept_percentile():
    ref = np.arange(100)
    assert ex.concept_percentile(ref, 50) == pytest.approx(50.5)
    assert ex.concept_percentile(ref, 1000) == 100
    assert ex.concept_percentile(ref, -1) == 0
    with pytest.raises(ValueError, match="empty"):
        ex.concept_percentile([], 1.0)


class QuadrantEncoder:
    """Embeds an image as the mean brightness of its four quadrants (TL, TR, BL, BR)."""

    def encode_images(self, images):
        out = []
        for im in images:
            a = np.asarray(im.convert("L"), np.float32) / 255
            h, w = a.shape[0] // 2, a.shape[1] // 2
            out.append([a[:h, :w].mean(), a[:h, w:].mean(), a[h:, :w].mean(), a[h:, w:].mean()])
        return np.asarray(out, np.float32)


def test_occlusion_map_finds_where_the_concept_fires():
    rng = np.random.default_rng(0)
    X = rng.random((60, 4)).astype(np.float32)
    y = np.where(X[:, 0] > 0.5, "bright", "dark")
    model = LinearProbe().fit(X, y)
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16, :16] = 255  # only the top-left quadrant is lit
    heat = ex.occlusion_map(model, Image.fromarray(img), model.concept_names_[0], QuadrantEncoder(), patch=8)
    assert heat.shape == (32, 32)
    assert heat[:16, :16].mean() > 0 and heat[:16, :16].mean() > 5 * abs(heat[16:, 16:].mean())
