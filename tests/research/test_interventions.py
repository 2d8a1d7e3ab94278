"""Intervention curves: vectorised over images, equal to the per-image reference, for every policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from world_models import one_torch_thread

from cbm.models import create_model
from cbm.research.annotations import from_array
from cbm.research.interventions import (
    POLICIES,
    _class_positions,
    _curve_per_sample,
    intervention_curves,
    intervention_order,
    intervention_values,
)


@pytest.fixture(scope="module")
def truth(world):
    return from_array(world["test"].concepts, world.bank.names, source="world")


def fit(method, world):
    """A small, quick fit (one torch thread: the problem is tiny and the CPU shared)."""
    with one_torch_thread():
        model = create_model(method, concepts=world.bank, n_lambdas=1, max_iter=300, device="cpu")
        return model.fit(world["train"].X, world["train"].y)


@pytest.fixture(scope="module", params=["pcbm", "pcbm-h"])
def model(request, world):
    return fit(request.param, world)


@pytest.mark.parametrize("policy", POLICIES)
def test_vectorised_curve_equals_per_image_reference(model, world, truth, policy):
    X, y = world["test"].X, world["test"].y
    T = truth.matrix_for(model.concept_names_).copy()
    T[::3, 1] = np.nan  # some labels unknown: never intervened on
    T[1::4, 2] = 0.3    # a soft label
    curves = intervention_curves(model, X, y, T, policies=[policy])
    A = model.transform(X)
    R = model.residual_logits(X) if model.hybrid else None
    off, on = intervention_values(A)
    pred = model.logits_from_activations(A, R).argmax(1)
    order = intervention_order(policy, A, model.coef_, pred, T, off, on)
    ref = _curve_per_sample(model, A, R, _class_positions(model, y), T, order, off, on, len(curves.k) - 1)
    np.testing.assert_allclose(curves.accuracy[policy], ref, atol=1e-9)


def test_every_policy_ends_with_all_concepts_set(model, world, truth):
    curves = intervention_curves(model, world["test"].X, world["test"].y, truth)
    assert curves.k[-1] == len(model.concept_names_)
    finals = {p: acc[-1] for p, acc in curves.accuracy.items()}
    assert len(set(finals.values())) == 1  # the order changes the path, not the end point
    assert finals["random"] >= curves.accuracy["random"][0]


def test_k_zero_is_the_model_accuracy(model, world, truth):
    curves = intervention_curves(model, world["test"].X, world["test"].y, truth, policies=["random"])
    assert curves.accuracy["random"][0] == pytest.approx(model.score(world["test"].X, world["test"].y))


def test_unannotated_concepts_are_never_asked(model, world):
    T = np.full((len(world["test"].y), len(model.concept_names_)), np.nan, np.float32)
    T[:, 0] = 1.0
    curves = intervention_curves(model, world["test"].X, world["test"].y, T, policies=["random"])
    assert curves.k.tolist() == [0, 1] and curves.n_annotated == 1


def test_cost_aware_policy_asks_cheap_concepts_first(model, world, truth):
    cost = np.full(len(model.concept_names_), 100.0, np.float32)
    cost[:3] = 1.0
    curves = intervention_curves(model, world["test"].X, world["test"].y, truth, cost=cost,
                                 policies=["random", "coop"])
    assert curves.cost["coop"][1] < curves.cost["random"][1] / 2
    assert curves.cost["coop"][-1] == pytest.approx(curves.cost["random"][-1])


def test_annotations_are_aligned_by_name(model, world):
    ann = from_array(world["test"].concepts, world.bank.names)
    shuffled = ann.select(ann.concepts[::-1])
    a = intervention_curves(model, world["test"].X, world["test"].y, ann, policies=["contribution"])
    b = intervention_curves(model, world["test"].X, world["test"].y, shuffled, policies=["contribution"])
    np.testing.assert_array_equal(a.accuracy["contribution"], b.accuracy["contribution"])


def test_unknown_policy_names_the_closest(model, world, truth):
    with pytest.raises(ValueError, match="Unknown intervention policy 'uncertain'.*'uncertainty'"):
        intervention_curves(model, world["test"].X, world["test"].y, truth, policies=["uncertain"])


def test_outputs_json_plotly_and_svg(model, world, truth):
    curves = intervention_curves(model, world["test"].X, world["test"].y, truth, policies=["random", "coop"])
    d = json.loads(json.dumps(curves.to_dict()))
    assert set(d["policies"]) == {"random", "coop"} and len(d["policies"]["coop"]["accuracy"]) == len(curves.k)
    assert [t.name for t in curves.figure().data] == ["random", "coop"]
    svg = curves.svg()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "k=0" in curves.summary()
