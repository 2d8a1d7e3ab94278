"""SparseActivationIndex: posting lists reproduce dense scoring of sparse activations."""

from __future__ import annotations

import pytest
import torch

from cbm.kernels import SparseActivationIndex


@pytest.fixture
def sparse_acts():
    a = torch.randn(500, 40)
    return a * (torch.rand(500, 40) < 0.05)  # ~5% nonzero, like a trained sparse layer


def test_postings_are_the_nonzeros_highest_first(sparse_acts):
    index = SparseActivationIndex.build(sparse_acts)
    for j in (0, 17, 39):
        vals, rows = index.postings(j)
        assert set(rows.tolist()) == set(torch.nonzero(sparse_acts[:, j]).flatten().tolist())
        assert torch.equal(vals, sparse_acts[rows, j])
        assert (vals[:-1] >= vals[1:]).all()
    assert index.density == pytest.approx((sparse_acts != 0).float().mean().item())


def test_weighted_search_equals_dense_scoring(sparse_acts):
    index = SparseActivationIndex.build(sparse_acts)
    scores, rows = index.search({3: 1.0, 7: -1.0}, topk=5)
    dense = sparse_acts[:, 3] - sparse_acts[:, 7]
    torch.testing.assert_close(scores, dense.topk(5).values)
    torch.testing.assert_close(dense[rows], scores)
    w = torch.zeros(40)
    w[[3, 7]] = torch.tensor([1.0, -1.0])
    torch.testing.assert_close(index.search(w, topk=5)[0], scores)


def test_built_from_blocks_equals_built_at_once(sparse_acts):
    blocks = ((s, sparse_acts[s : s + 64]) for s in range(0, 500, 64))
    a, b = SparseActivationIndex.build(blocks), SparseActivationIndex.build(sparse_acts)
    assert a.n_samples == 500
    assert torch.equal(a.ptr, b.ptr) and torch.equal(a.values, b.values)


def test_threshold_drops_small_activations(sparse_acts):
    index = SparseActivationIndex.build(sparse_acts, threshold=1.0)
    assert (index.values.abs() > 1.0).all()


class TestErrors:
    def test_concept_out_of_range(self, sparse_acts):
        with pytest.raises(IndexError, match="concept 40 is out of range for 40 concepts"):
            SparseActivationIndex.build(sparse_acts).postings(40)

    def test_weight_vector_length(self, sparse_acts):
        with pytest.raises(ValueError, match="weights has 3 entries; the index has 40 concepts"):
            SparseActivationIndex.build(sparse_acts).search(torch.ones(3))
