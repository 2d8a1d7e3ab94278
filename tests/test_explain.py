"""Explanations and interventions: contributions add up to the logits, for plain and hybrid heads."""

import numpy as np
import pytest
import torch

from cbm import explain as ex
from cbm.data import make_concept_world
from cbm.exceptions import EditError
from cbm.models.baselines import LinearProbe


class HybridProbe(LinearProbe):
    """A linear probe with a residual path, standing in for hybrid models such as PCBM-h."""

    hybrid = True

    def _residual(self, X: torch.Tensor) -> torch.Tensor:
        return 0.1 * X[:, : len(self.classes_)]


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=16, random_state=0)


@pytest.fixture(scope="module", params=[LinearProbe, HybridProbe])
def fitted(request, world):
    names = np.asarray(world.class_names)
    return request.param().fit(world["train"].X, names[world["train"].y])


def test_contributions_intercept_and_residual_add_up_to_the_logits(fitted, world):
    X = world["test"].X
    e = ex.explain(fitted, X, top=3)
    res = e.residual_part()
    total = e.contributions.sum(1) + fitted.intercept_[e.target] + (0 if res is None else res)
    np.testing.assert_allclose(total, fitted.decision_function(X)[np.arange(len(X)), e.target], rtol=1e-4, atol=1e-4)
    assert (res is None) == (not fitted.hybrid)


def test_explain_targets_the_prediction_and_measures_the_margin(fitted, world):
    e = ex.explain(fitted, world["test"].X, top=4)
    Z = fitted.decision_function(world["test"].X)
    np.testing.assert_array_equal(e.target, Z.argmax(1))
    assert (e.margin >= 0).all()
    assert (e.runner_up != e.target).all()
    top = np.take_along_axis(e.contributions, e.top_positive, 1)
    assert (np.diff(top, axis=1) <= 0).all()  # largest first
    assert e.all_classes().shape == (len(Z), 3, 16)
    np.testing.assert_allclose(e.all_classes()[:, 1], e.for_class(e.class_names[1]))


def test_explain_from_cached_activations_equals_explain_from_embeddings(fitted, world):
    X = world["test"].X[:5]
    res = fitted.residual_logits(X) if fitted.hybrid else None
    a, b = ex.explain(fitted, X), ex.explain(fitted, activations=fitted.transform(X), residual=res)
    np.testing.assert_allclose(a.logits, b.logits)
    one = ex.explain_one(fitted, X[2], target=fitted.class_names_[0])
    assert one.target[0] == 0 and len(one) == 1
    assert "margin" in one.summary(0) and one.table(0)["contribution"].abs().is_monotonic_decreasing


def test_contributions_keeps_the_shape_of_its_input(fitted, world):
    A = fitted.transform(world["test"].X[:4])
    c1, r1 = ex.contributions(fitted, A[0], target=1)
    cN, rN = ex.contributions(fitted, A, target="cardinal" if "cardinal" in fitted.class_names_ else 1)
    assert c1.shape == (16,) and r1 is None and cN.shape == (4, 16)
    np.testing.assert_allclose(c1, A[0] * fitted.coef_[1])


def test_intervention_sets_and_clamps_only_the_chosen_samples(fitted, world):
    A = fitted.transform(world["test"].X[:6])
    res = fitted.residual_logits(world["test"].X[:6]) if fitted.hybrid else None
    out = ex.intervene(fitted, A, {"feature 0": 5.0, 3: (None, 0.0)}, residual=res, rows=[1, 2])
    assert (out.activations[[1, 2], 0] == 5.0).all() and (out.activations[[1, 2], 3] <= 0).all()
    np.testing.assert_array_equal(out.activations[[0, 3, 4, 5]], A[[0, 3, 4, 5]])
    np.testing.assert_allclose(out.logits_after, fitted.logits_from_activations(out.activations, res))
    assert set(out.changed) == set(np.flatnonzero(out.pred_before != out.pred_after))
    with pytest.raises(ValueError, match="finite"):
        ex.intervene(fitted, A, {0: float("nan")})


def test_counterfactual_switches_concepts_off(fitted, world):
    A = fitted.transform(world["test"].X[:3])
    res = fitted.residual_logits(world["test"].X[:3]) if fitted.hybrid else None
    p = ex.counterfactual(fitted, A[0], ["feature 1", "feature 2"], residual=None if res is None else res[0])
    off = A[:1].copy()
    off[:, [1, 2]] = 0
    np.testing.assert_allclose(p, ex.softmax(fitted.logits_from_activations(off, None if res is None else res[:1]))[0],
                               rtol=1e-5)
    assert p.shape == (3,) and ex.counterfactual(fitted, A, {1: 0.0}).shape == (3, 3)


def test_counterfactual_table_agrees_with_switching_each_concept_off(fitted, world):
    A = fitted.transform(world["shifted"].X[:1])[0]
    tab = ex.counterfactual_table(fitted, A)
    for r in tab.head(5).itertuples():
        p = ex.counterfactual(fitted, A, [r.concept])
        assert fitted.class_names_[int(p.argmax())] == r.new_prediction
    assert tab["flips"].is_monotonic_decreasing


def test_global_views_list_weights_top_concepts_and_unused_ones(world):
    names = np.asarray(world.class_names)
    m = LinearProbe().fit(world["train"].X, names[world["train"].y])
    W = ex.weight_matrix(m)
    assert W.shape == (3, 16) and list(W.index) == m.class_names_
    top = ex.top_concepts(m, n=2)
    assert (top[top.sign == "positive"].weight > 0).all() and (top[top.sign == "negative"].weight < 0).all()
    k0 = top[(top["class"] == m.class_names_[0]) & (top.sign == "positive")]
    assert k0.iloc[0].concept == m.concept_names_[int(m.coef_[0].argmax())]
    assert ex.unused_concepts(m) == []
    m.coef_[:, 4] = 0
    assert ex.unused_concepts(m) == ["feature 4"]


def test_unknown_names_get_the_closest_suggestion(fitted):
    with pytest.raises(EditError, match="Did you mean 'feature 1'"):
        ex.concept_index(fitted, "featur 1")
    with pytest.raises(EditError, match="Unknown class"):
        ex.class_index(fitted, "penguin")
