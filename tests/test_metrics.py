"""Metrics: accuracy variants, KnoBo's domain metrics, VLG-CBM's NEC/ANEC, concept recovery and
the report/table used by the CLI."""

import numpy as np
import pytest

from cbm.metrics import (
    ANEC_PATHS,
    accuracy,
    anec,
    anec_heads,
    anec_truncated,
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

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert rep["splits"]["all"]["anec_truncated"]["1"] == anec_truncated(model, X, y, 1)
    assert rep["splits"]["all"]["anec"] == {}  # no split named "train": nothing to refit on
    with_train = report(model, {"train": (X, y), "test": (X[:30], y[:30])}, anec_k=(1,))
    assert with_train["splits"]["test"]["anec"]["1"] == anec(model, X[:30], y[:30], 1, train=(X, y))
    table = format_report(rep)
    assert "shifted" in table and "NEC 1.50" in table and "concept recovery" in table
    assert "OOD" in table


# -- ANEC as VLG-CBM defines it: refit along a sparsity path, then truncate ----------------------
def _sparse_problem(seed=0, n=240, m=12, k=3):
    """Concept activations where each class depends on a few concepts, plus a dense head model."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, m)) * rng.uniform(0.5, 2.0, m) + rng.uniform(-1, 1, m)
    W = np.zeros((k, m))
    for c in range(k):
        W[c, rng.choice(m, 3, replace=False)] = rng.uniform(1.5, 3.0, 3) * rng.choice([-1, 1], 3)
    y = (A @ W.T + 0.5 * rng.standard_normal((n, k))).argmax(1)

    class Dense(_Head):
        classes_ = np.arange(k)
        coef_ = rng.standard_normal((k, m))  # a dense head: truncating it says nothing about the concepts
        intercept_ = np.zeros(k)

    return A.astype(np.float32), y, Dense()


def _sklearn_elastic_net(A, y, lam, alpha=0.99, ddof=0):
    """The same objective solved by scikit-learn's saga: mean CE + lam (alpha |W|_1 + (1-alpha)/2 |W|^2)."""
    from sklearn.linear_model import LogisticRegression

    Z = (A - A.mean(0)) / A.std(0, ddof=ddof)
    clf = LogisticRegression(l1_ratio=alpha, C=1.0 / (lam * len(A)), solver="saga", tol=1e-6,
                             max_iter=5000).fit(Z, y)
    return clf.coef_, clf.intercept_


def test_anec_refits_along_the_path_to_the_first_lambda_reaching_nec_k_then_truncates():
    A, y, model = _sparse_problem()
    K, k, step = 3, 2, 2 ** 0.1
    head = anec_heads(model, A, y, ks=(k,))[k]
    assert nec(head["coef"]) <= k and nonzero_weights(head["coef"]) == round(k * K)
    # an independent solver at the chosen lambda: same weights before truncation ...
    W, b = _sklearn_elastic_net(A, y, head["lam"])
    assert (np.abs(W) > 1e-5).sum(1).mean() >= k
    np.testing.assert_allclose(prune_to_nec(W, k), head["coef"], atol=2e-3)
    # ... and the path point before it (lambda * 2^0.1) had not reached NEC k yet
    W_prev, _ = _sklearn_elastic_net(A, y, head["lam"] * step)
    assert (np.abs(W_prev) > 1e-5).sum(1).mean() < k
    # the refitted head sees the concepts, unlike a truncated dense head
    assert anec(model, A, y, k, train=(A, y)) > anec_truncated(model, A, y, k) + 0.1


@pytest.mark.parametrize("path", ["project", "released"])
def test_anec_path_point_for_k3_is_the_first_an_exact_solve_puts_at_nec_3(path):
    A, y, model = _sparse_problem()
    k, cfg = 3, ANEC_PATHS[path]
    head = anec_heads(model, A, y, ks=(k,), path=path, max_iter=2000, tol=1e-6)[k]
    W, _ = _sklearn_elastic_net(A, y, head["lam"], ddof=cfg["ddof"])   # saga to tol 1e-6, from zero
    assert (np.abs(W) > 1e-5).sum(1).mean() >= k
    np.testing.assert_allclose(prune_to_nec(W, k), head["coef"], atol=2e-3)
    W_prev, _ = _sklearn_elastic_net(A, y, head["lam"] * cfg["step"], ddof=cfg["ddof"])
    assert (np.abs(W_prev) > 1e-5).sum(1).mean() < k


def test_released_anec_path_starts_at_a_fixed_lambda_steps_by_2_to_the_15_over_149_with_unbiased_std():
    A, y, model = _sparse_problem()
    released = anec_heads(model, A, y, ks=(1, 3), path="released")
    project = anec_heads(model, A, y, ks=(1, 3))
    assert released[1]["lam"] == pytest.approx(0.1 / 0.99)   # the fixed start already has a weight
    steps = np.log(released[1]["lam"] / released[3]["lam"]) / np.log(2 ** (15 / 149))
    assert steps == pytest.approx(round(steps), abs=1e-6) and round(steps) > 0
    np.testing.assert_allclose(released[3]["std"], A.std(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(project[3]["std"], A.std(0), rtol=1e-5)
    assert project[1]["lam"] > 0.1 / 0.99   # the project's path starts where every weight is zero
    with pytest.raises(ValueError, match="Unknown ANEC path 'paper'.*'project', 'released'"):
        anec_heads(model, A, y, ks=(1,), path="paper")
    assert anec(model, A, y, 3, train=(A, y), path="released") > 0.85


def test_the_registry_names_every_metric_a_report_writes():
    from cbm.metrics import get_metric, list_metrics

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] < 0).astype(int)
    rep = report(_Head(), {"train": (X, y), "test": (X, y, np.where(np.arange(40) < 20, "a", "b"))}, anec_k=(1,))
    written = {"top_k" if k.startswith("top_") else k for k in rep["splits"]["test"]} - {"n"}
    assert written | set(rep["sparsity"]) - {"total_weights", "n_concepts"} <= set(list_metrics())
    assert get_metric("nec").level == "model" and not get_metric("nec").higher_is_better


def test_every_registered_metric_names_the_function_that_computes_it():
    from cbm.metrics import get_metric, list_metrics

    for name in list_metrics():
        assert callable(get_metric(name).function()), name
    assert set(list_metrics("finding")) == {"auroc", "average_precision", "sensitivity"}
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'. Did you mean 'accuracy'"):
        get_metric("acuracy")


def test_experiment_summaries_use_registered_names():
    from cbm.metrics import list_metrics
    from cbm.research.experiment import SUMMARY_KEYS

    assert set(SUMMARY_KEYS) <= set(list_metrics())
