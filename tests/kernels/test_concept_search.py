"""concept_search: streaming top-k over arrays, memmaps and block stores equals brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbm.kernels import concept_search
from cbm.kernels.concept_scores import concept_scores_reference


def brute_force(x, query, weights, normalize=True):
    q = torch.as_tensor(query).reshape(-1, x.shape[1])
    s = concept_scores_reference(torch.as_tensor(x), q, normalize=normalize)
    return s @ torch.as_tensor(weights, dtype=torch.float64)


class BlockStore:
    """Minimal stand-in for cbm.EmbeddingStore: ``iter_blocks(block_size)`` -> (start, block)."""

    def __init__(self, array):
        self.array = array
        self.seen_block_sizes = []

    def iter_blocks(self, block_size):
        self.seen_block_sizes.append(block_size)
        for start in range(0, len(self.array), block_size):
            yield start, self.array[start : start + block_size]


@pytest.fixture
def embeddings():
    return np.random.default_rng(torch.initial_seed() % 2**32).standard_normal((1000, 24)).astype(np.float16)


@pytest.mark.parametrize("kind", ["tensor", "array", "memmap", "blocks"])
def test_streaming_top_k_equals_brute_force(backend, embeddings, tmp_path, assert_close, kind):
    query = torch.randn(24)
    if kind == "memmap":
        np.save(tmp_path / "e.npy", embeddings)
        store = np.load(tmp_path / "e.npy", mmap_mode="r")
    else:
        store = {"tensor": torch.from_numpy(embeddings), "array": embeddings,
                 "blocks": BlockStore(embeddings)}[kind]
    scores, idx = concept_search(store, query, topk=7, block_size=97)
    ref = brute_force(embeddings, query, [1.0])
    assert scores.shape == idx.shape == (7,)
    assert_close(scores, ref.topk(7).values, 1e-5, 1e-5, "scores")
    assert_close(ref[idx], scores, 1e-5, 1e-5, "reference scores at returned rows")
    if kind == "blocks":
        assert store.seen_block_sizes == [97]


def test_a_and_not_b(backend, embeddings, assert_close):
    pair = torch.randn(2, 24)
    scores, idx = concept_search(embeddings, pair, weights=[1, -1], topk=5, block_size=128)
    ref = brute_force(embeddings, pair, [1.0, -1.0])
    assert_close(scores, ref.topk(5).values, 1e-5, 1e-5)
    plain_a = concept_search(embeddings, pair[0], topk=5)[1]
    assert set(idx.tolist()) != set(plain_a.tolist()) or ref[idx].min() > 0


def test_raw_dot_products(backend, embeddings, assert_close):
    query = torch.randn(3, 24)
    scores, _ = concept_search(embeddings, query, weights=[0.5, 2, -1], topk=4, normalize=False)
    assert_close(scores, brute_force(embeddings, query, [0.5, 2, -1], False).topk(4).values, 1e-4, 1e-5)


def test_topk_larger_than_store_returns_all_rows(backend):
    scores, idx = concept_search(torch.randn(6, 5), torch.randn(5), topk=10, block_size=4)
    assert sorted(idx.tolist()) == list(range(6))
    assert (scores[:-1] >= scores[1:]).all()


class TestErrors:
    def test_dimension_mismatch_names_block(self):
        with pytest.raises(ValueError, match=r"block at row 0 has shape \(4, 5\); expected \(rows, 3\)"):
            concept_search(torch.randn(4, 5), torch.randn(3))

    def test_weights_count(self):
        with pytest.raises(ValueError, match="weights has 1 entries but query has 2"):
            concept_search(torch.randn(4, 3), torch.randn(2, 3), weights=[1])

    def test_store_type(self):
        with pytest.raises(TypeError, match="object with iter_blocks"):
            concept_search(["not", "a", "store"], torch.randn(3))

    @pytest.mark.parametrize("k", [0, -2, 2.0])
    def test_topk(self, k):
        with pytest.raises(ValueError, match="topk must be a positive integer"):
            concept_search(torch.randn(4, 3), torch.randn(3), topk=k)
