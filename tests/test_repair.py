"""Choosing a repair: independence weights, and the LEACE eraser helper."""

import numpy as np

from cbm.repair import erase_with, independence_weights


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
