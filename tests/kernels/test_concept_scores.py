"""concept_scores: parity with a float64 reference on both paths, top-k, autograd, input errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import TOLS

from cbm.kernels import concept_scores
from cbm.kernels.concept_scores import concept_scores_reference

# the package attribute `concept_scores` is the function; the module is in sys.modules
cs_module = importlib.import_module("cbm.kernels.concept_scores")

# (N, M, d): single row/concept, and ragged against every block size (the PyTorch row block is
# shrunk to 32 rows below, so N=130 crosses four block boundaries on both paths).
SHAPES = [(1, 1, 3), (37, 21, 40), (130, 70, 33)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def small_row_blocks(monkeypatch):
    monkeypatch.setattr(cs_module, "_row_block", lambda d, m, topk=False: 32)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
def test_matches_reference_into_nan_poisoned_out(backend, device, assert_close, shape, dtype, with_bias):
    n, m, d = shape
    x = torch.randn(n, d, device=device).to(dtype)
    c = torch.randn(m, d, device=device).to(dtype)
    bias = torch.randn(m, device=device) if with_bias else None
    out = torch.full((n, m), float("nan"), device=device)
    got = concept_scores(x, c, scale=2.5, bias=bias, out=out)
    assert got is out
    assert_close(got, concept_scores_reference(x, c, 2.5, bias), *TOLS[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_raw_dot_products_without_normalize(backend, device, assert_close, dtype):
    x = torch.randn(50, 30, device=device).to(dtype)
    c = torch.randn(20, 30, device=device).to(dtype)
    got = concept_scores(x, c, normalize=False)
    ref = concept_scores_reference(x, c, normalize=False)
    assert got.dtype == torch.float32
    assert_close(got, ref, 1e-4, TOLS[dtype][1])


@pytest.mark.parametrize("shape", [(37, 21, 40), (130, 19, 24)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("scale", [2.0, -1.0])
def test_topk_values_and_indices_per_image(backend, device, assert_close, shape, with_bias, scale):
    n, m, d = shape
    x, c = torch.randn(n, d, device=device), torch.randn(m, d, device=device)
    bias = torch.randn(m, device=device) if with_bias else None
    values, idx = concept_scores(x, c, scale=scale, bias=bias, topk=5)
    ref = concept_scores_reference(x, c, scale, bias=bias)
    assert values.shape == idx.shape == (n, 5)
    assert_close(values, ref.topk(5, dim=1).values, 1e-5, 1e-5, "top-k values")
    assert_close(ref.gather(1, idx.cpu()), values, 1e-5, 1e-5, "scores at returned indices")


def test_zero_rows_score_zero_not_nan(backend, device):
    x = torch.randn(5, 16, device=device)
    x[2] = 0
    got = concept_scores(x, torch.randn(3, 16, device=device))
    assert torch.isfinite(got).all()
    assert (got[2] == 0).all()


def test_gradients_match_float64_autograd(assert_close):
    x = torch.randn(9, 12, requires_grad=True)
    c = torch.randn(4, 12, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    w = torch.randn(9, 4)
    (concept_scores(x, c, scale=3.0, bias=b) * w).sum().backward()
    x64, c64, b64 = (t.detach().double().requires_grad_() for t in (x, c, b))
    (concept_scores_reference(x64, c64, 3.0, b64) * w.double()).sum().backward()
    for got, ref, name in ((x, x64, "images"), (c, c64, "concepts"), (b, b64, "bias")):
        assert_close(got.grad, ref.grad, 1e-5, 1e-5, f"grad {name}")


def test_accepts_float16_memmap(tmp_path, assert_close):
    arr = np.lib.format.open_memmap(tmp_path / "emb.npy", mode="w+", dtype=np.float16, shape=(300, 8))
    arr[:] = np.random.default_rng(0).standard_normal((300, 8))
    arr.flush()
    ro = np.load(tmp_path / "emb.npy", mmap_mode="r")
    c = torch.randn(6, 8)
    ref = concept_scores_reference(torch.from_numpy(np.array(ro)), c)
    assert_close(concept_scores(ro, c), ref, *TOLS[torch.float16])


class TestErrors:
    def test_dimension_mismatch_names_both_shapes(self):
        with pytest.raises(ValueError, match=r"concepts has 5 columns but 4 were expected"):
            concept_scores(torch.randn(3, 4), torch.randn(2, 5))

    def test_bias_shape(self):
        with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
            concept_scores(torch.randn(3, 4), torch.randn(2, 4), bias=torch.randn(3))

    @pytest.mark.parametrize("k", [0, 3, 1.5, True])
    def test_topk_out_of_range(self, k):
        with pytest.raises(ValueError, match=r"topk must be an integer in \[1, 2\]"):
            concept_scores(torch.randn(3, 4), torch.randn(2, 4), topk=k)

    def test_out_must_be_float32(self):
        with pytest.raises(TypeError, match="out must be float32"):
            concept_scores(torch.randn(3, 4), torch.randn(2, 4), out=torch.empty(3, 2).double())

    def test_out_shape(self):
        with pytest.raises(ValueError, match=r"expected \(3, 2\)"):
            concept_scores(torch.randn(3, 4), torch.randn(2, 4), out=torch.empty(2, 3))

    def test_one_dimensional_images(self):
        with pytest.raises(ValueError, match="images must be a 2-D tensor"):
            concept_scores(torch.randn(4), torch.randn(2, 4))
