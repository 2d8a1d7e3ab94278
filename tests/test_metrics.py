"""Metrics: accuracy variants, KnoBo's domain metrics, VLG-CBM's NEC/ANEC, concept recovery and
the report/table used by the CLI."""

import numpy as np
import pytest

from cbm.metrics import (
    accuracy,
    anec,
    concept_recovery,
    domain_accuracy,
    format_report,
    nec,
    nonzero_weights,
    per_class_accuracy,
    prune_to_nec,
    report,
    top_k_accuracy,
)


def test_accuracy_per_class_and_top_k():
    y, pred = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    assert accuracy(y, pred) == pytest.approx(0.6)
    assert per_class_accuracy(y, pred) == {"0": 0.5, "1": 1.0, "2": 0.0}
    scores = np.array([[3, 2, 1], [1, 3, 2], [1, 2, 3], [3, 2, 1], [2, 3, 1]], float)
    assert top_k_accuracy(y, scores, [0, 1, 2], k=1) == pytest.approx(0.2)
    assert top_k_accuracy(y, scores, [0, 1, 2], k=2) == pytest.approx(0.6)
    assert top_k_accuracy(y, scores, [0, 1, 2], k=3) == 1.0


def test_domain_metrics_follow_knobo():
    y = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 1, 1, 1])
    dom = np.array(["source"] * 4 + ["shifted"] * 2)
    d = domain_accuracy(y, pred, dom)
    assert (d["in_domain"], d["out_of_domain"]) == (1.0, 0.5)
    assert d["gap"] == pytest.approx(0.5) and d["average"] == pytest.approx(0.75)


def test_nec_counts_nonzero_weights_per_class_and_pruning_reaches_it():
    W = np.array([[1.0, 0, -2, 0.1], [0, 0, 3, 0], [0.5, 0.2, 0, 0]])
    assert nonzero_weights(W) == 6 and nec(W) == pytest.approx(2.0)
    P = prune_to_nec(W, 1)
    assert nec(P) == pytest.approx(1.0)
    np.testing.assert_array_equal(P[P != 0], [1.0, -2.0, 3.0])  # the K largest |w| overall survive


def test_concept_recovery_precision_and_recall():
    truth = np.array([[1, 1, 0, 0], [0, 0, 1, 1]])
    perfect = np.array([[2.0, 1, 0, 0], [0, 0, 1, 3]])
    assert concept_recovery(perfect, truth) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    half = np.array([[2.0, 0, 1, 0], [0, 0, 1, 3]])
    rec = concept_recovery(half, truth)
    assert rec["precision"] == pytest.approx(0.75) and rec["recall"] == pytest.approx(0.75)


class _Head:
    """A fixed linear head on raw features: enough of the model contract for the report."""

    method, hybrid = "fixed", False
    classes_ = np.array([0, 1])
    coef_ = np.array([[1.0, 0.0, 0.1], [-1.0, 0.0, 0.0]])
    intercept_ = np.zeros(2)

    def transform(self, X):
        return np.asarray(X)

    def decision_function(self, X):
        return self.transform(X) @ self.coef_.T + self.intercept_


def test_report_and_table():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] < 0).astype(int)
    dom = np.where(np.arange(50) < 30, "source", "shifted")
    model = _Head()
    splits = {"test": (X[:30], y[:30], dom[:30]), "all": (X, y),
              "shifted": {"X": X[30:], "y": y[30:], "domains": dom[30:]}}  # the CLI passes mappings
    rep = report(model, splits, truth=np.array([[1, 0, 0], [0, 1, 0]]), anec_k=(1,))
    pred = model.decision_function(X).argmax(1)
    assert rep["splits"]["all"]["accuracy"] == accuracy(y, pred)
    # the source and shifted splits are pooled into KnoBo's ID / OOD numbers
    assert rep["domains"]["in_domain"] == accuracy(y[:30], pred[:30])
    assert rep["domains"]["out_of_domain"] == accuracy(y[30:], pred[30:])
    assert rep["sparsity"]["nec"] == pytest.approx(1.5)
    assert rep["splits"]["all"]["anec"]["1"] == anec(model, X, y, 1)
    table = format_report(rep)
    assert "shifted" in table and "NEC 1.50" in table and "concept recovery" in table
    assert "OOD" in table
