"""Choosing a repair: independence weights, and the LEACE eraser helper."""

import numpy as np

from cbm.edits.repair import erase_with, independence_weights


def test_independence_weights_make_the_flag_independent_of_the_class():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    flags = rng.random(2000) < np.where(y == 2, 0.95, 0.05)  # confounded with class 2
    w = independence_weights(y, flags)
    rates = [np.average(flags[y == c], weights=w[y == c]) for c in range(4)]
    assert np.ptp(rates) < 1e-9
    assert np.isclose(w.mean(), 1.0)


def test_erase_with_applies_x_minus_L_R_x_minus_bias():
    d = 5
    u = np.zeros((d, 1), np.float32)
    u[0] = 1
    X = np.arange(10, dtype=np.float32).reshape(2, d)
    out = erase_with((u, u.T, np.zeros(d, np.float32)), X)
    assert (out[:, 0] == 0).all() and np.array_equal(out[:, 1:], X[:, 1:])


def test_the_black_box_given_the_same_fix_is_refitted_once_per_eraser_and_data():
    """Previewing several edits of one concept (the app's Edit page) refits the black box once."""
    from sklearn.linear_model import LogisticRegression

    from cbm.edits import TrainingData
    from cbm.edits.repair import _black_box_with_eraser

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 2, 60)
    u = np.eye(4, 1, dtype=np.float32)
    eraser = (u, u.T, np.zeros(4, np.float32))
    data = TrainingData(X, y)
    bb = LogisticRegression()
    first = _black_box_with_eraser(bb, eraser, data)
    assert _black_box_with_eraser(bb, eraser, TrainingData(X.copy(), y.copy())) is first  # same content
    assert np.allclose(first.coef_[:, 0], 0, atol=1e-6)  # it never sees the erased direction
    assert _black_box_with_eraser(bb, eraser, TrainingData(X[:50], y[:50])) is not first


def test_class_conditional_eraser_columns_never_tell_the_classes_apart():
    """Each column is the concept's flags centred within one class, so erasing them keeps class means."""
    from cbm.edits.kinds import _within_class_columns

    y = np.array(["a"] * 6 + ["b"] * 6 + ["c"] * 4)
    flags = np.array([1, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 0] + [1, 1, 1, 1], bool)  # c: always on
    Z = _within_class_columns(flags, y)
    assert Z.shape == (16, 2)  # class c has no images without the concept: no column
    for c in ("a", "b", "c"):
        np.testing.assert_allclose(Z[y == c].mean(0), 0, atol=1e-7)
