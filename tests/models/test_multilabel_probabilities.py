"""Finding probabilities from cached concept activations, and the presence threshold the library uses."""

import numpy as np
from findings_world import FINDINGS, world

from cbm.explain import intervene
from cbm.models.multilabel import PRESENT_THRESHOLD, MultiLabelCBM, finding_probabilities


def _model():
    X, Y, _ = world(300, 1)
    return MultiLabelCBM(finding_names=FINDINGS).fit(X, Y), world(40, 2)[0]


def test_probabilities_from_activations_equal_predict_proba():
    model, X = _model()
    np.testing.assert_allclose(finding_probabilities(model, model.transform(X)), model.predict_proba(X), atol=1e-6)
    one = finding_probabilities(model, model.transform(X)[0])
    assert one.shape == (1, len(FINDINGS))


def test_present_means_probability_at_least_the_threshold():
    model, X = _model()
    assert PRESENT_THRESHOLD == 0.5
    np.testing.assert_array_equal(model.predict(X), finding_probabilities(model, model.transform(X)) >= PRESENT_THRESHOLD)


def test_probabilities_after_switching_a_concept_off():
    model, X = _model()
    A = model.transform(X[:1])
    it = intervene(model, A, {model.concept_names_[0]: 0.0})
    A0 = A.copy()
    A0[0, 0] = 0
    np.testing.assert_allclose(finding_probabilities(model, it.activations), finding_probabilities(model, A0))
