"""cbm.arrays: the one unit-normalising helper and the one softmax, shared by every module."""

import doctest

import numpy as np
import torch

from cbm import arrays
from cbm.arrays import softmax, unit_rows


def test_unit_rows_scales_each_row_to_length_one_and_keeps_zero_rows_zero():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])


def test_unit_rows_keeps_the_dtype_unless_told_and_accepts_lists_and_tensors():
    assert unit_rows(np.ones((2, 3), np.float32)).dtype == np.float32
    assert unit_rows(np.ones((2, 3), np.float32), np.float64).dtype == np.float64
    assert unit_rows([[1, 1]], np.float32).dtype == np.float32
    t = torch.ones(2, 4, requires_grad=True)
    np.testing.assert_allclose(unit_rows(t), np.full((2, 4), 0.5))


def test_unit_rows_works_on_one_vector_and_on_stacks():
    np.testing.assert_allclose(unit_rows(np.array([0.0, 5.0])), [0.0, 1.0])
    assert unit_rows(np.ones((2, 3, 4))).shape == (2, 3, 4)


def test_softmax_rows_sum_to_one_and_follow_the_logits():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    p = softmax(z)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert (np.diff(p[0]) > 0).all()
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0])  # no overflow on large logits


def test_softmax_returns_the_asked_dtype():
    assert softmax(np.zeros((1, 4)), np.float32).dtype == np.float32


def test_the_module_examples_run():
    assert doctest.testmod(arrays).failed == 0
