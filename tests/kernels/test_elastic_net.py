"""elastic_net_prox: parity with the textbook prox, in place and into poisoned outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import OUTPUT_ROUNDING

from cbm.kernels import elastic_net_prox
from cbm.kernels.elastic_net import elastic_net_prox_reference

SHAPES = [(1,), (10, 7), (9, 129), (3, 5, 7)]  # 1161 elements: two 1024-blocks, ragged


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_matches_reference_into_nan_poisoned_out(backend, device, assert_close, shape, dtype):
    w = torch.randn(*shape, device=device).to(dtype)
    g = torch.randn(*shape, device=device).to(dtype)
    out = torch.full(shape, float("nan"), device=device, dtype=dtype)
    got = elastic_net_prox(w, g, lr=0.1, l1=2.0, l2=0.5, out=out)
    assert got is out
    ref = elastic_net_prox_reference(w, g, 0.1, 2.0, 0.5)
    assert_close(got, ref, 1e-6, OUTPUT_ROUNDING[dtype])
    assert (got[ref == 0] == 0).all(), "soft-threshold must give exact zeros"


def test_in_place_update(backend, device, assert_close):
    w, g = torch.randn(40, 9, device=device), torch.randn(40, 9, device=device)
    ref = elastic_net_prox_reference(w, g, 0.05, 1.0, 1.0)
    assert elastic_net_prox(w, g, 0.05, 1.0, 1.0, out=w) is w
    assert_close(w, ref, 1e-6, 1e-6)


def test_no_penalty_is_a_plain_gradient_step(backend, device, assert_close):
    w, g = torch.randn(6, 6, device=device), torch.randn(6, 6, device=device)
    assert_close(elastic_net_prox(w, g, 0.3, 0.0, 0.0), w - 0.3 * g, 1e-6, 1e-6)


def test_large_l1_zeroes_everything(backend, device):
    w = torch.randn(8, 8, device=device)
    assert (elastic_net_prox(w, torch.zeros_like(w), 1.0, 1e6, 0.0) == 0).all()


class TestErrors:
    def test_negative_strength(self):
        with pytest.raises(ValueError, match="l1 must be a non-negative float; got -1"):
            elastic_net_prox(torch.ones(2), torch.ones(2), 0.1, -1, 0)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"grad has shape \(3,\) but W has shape \(2,\)"):
            elastic_net_prox(torch.ones(2), torch.ones(3), 0.1, 0, 0)

    def test_out_must_match(self):
        with pytest.raises(ValueError, match="out must match W"):
            elastic_net_prox(torch.ones(2), torch.ones(2), 0.1, 0, 0, out=torch.ones(2).double())
