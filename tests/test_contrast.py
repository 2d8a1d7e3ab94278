"""Contrastive explanations, intervention effects and concept evidence on the image."""

import numpy as np
import pytest
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
