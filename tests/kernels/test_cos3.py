"""cos3_similarity: parity and gradients against LF-CBM's formula in float64, on both paths."""

from __future__ import annotations

import pytest
import torch

from cbm.kernels import cos3_similarity
from cbm.kernels.cos3 import cos3_reference

SHAPES = [(5, 1), (29, 13), (130, 70), (257, 3)]  # B=2 is exactly +-1 (zero gradient)
# fp16/bf16 inputs are exact; cubes and sums run in fp32. Gradients are rounded to the input dtype.
TOL = {torch.float32: (1e-5, 1e-4), torch.float16: (1e-5, 1e-4), torch.bfloat16: (1e-5, 1e-4)}
GRAD_RTOL = {torch.float32: 1e-4, torch.float16: 2**-9, torch.bfloat16: 2**-6}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_values_and_gradients_match_float64(backend, device, assert_close, shape, dtype):
    a = torch.randn(*shape, device=device).to(dtype).requires_grad_()
    b = (0.5 * a.detach().float() + torch.randn(*shape, device=device)).to(dtype).requires_grad_()
    weights = torch.randn(shape[1], device=device)
    sim = cos3_similarity(a, b)
    (sim * weights).sum().backward()
    a64, b64 = (t.detach().double().requires_grad_() for t in (a, b))
    ref = cos3_reference(a64, b64)
    (ref * weights.double()).sum().backward()
    assert sim.shape == (shape[1],) and sim.dtype == torch.float32
    assert_close(sim, ref, *TOL[dtype], "cos3")
    scale = max(a64.grad.abs().max().item(), b64.grad.abs().max().item())
    assert_close(a.grad, a64.grad, 1e-5 + 1e-4 * scale, GRAD_RTOL[dtype], "grad a")
    assert_close(b.grad, b64.grad, 1e-5 + 1e-4 * scale, GRAD_RTOL[dtype], "grad b")


def test_identical_and_opposite_columns(backend, device, assert_close):
    a = torch.randn(40, 6, device=device)
    assert_close(cos3_similarity(a, a), torch.ones(6), 1e-5, 1e-5, "cos3(a, a)")
    assert_close(cos3_similarity(a, -a), -torch.ones(6), 1e-5, 1e-5, "cos3(a, -a)")


def test_invariant_to_column_shift_and_positive_scale(backend, device, assert_close):
    a, b = torch.randn(50, 5, device=device), torch.randn(50, 5, device=device)
    shifted = 3.0 * a + torch.randn(1, 5, device=device)
    assert_close(cos3_similarity(shifted, b), cos3_similarity(a, b), 1e-5, 1e-4)


def test_constant_column_scores_zero_not_nan(backend, device):
    a, b = torch.randn(20, 3, device=device), torch.randn(20, 3, device=device)
    a[:, 1] = 4.0
    sim = cos3_similarity(a, b)
    assert torch.isfinite(sim).all() and sim[1] == 0


class TestErrors:
    def test_shapes_must_match(self):
        with pytest.raises(ValueError, match=r"same shape; got \(4, 3\) and \(4, 2\)"):
            cos3_similarity(torch.randn(4, 3), torch.randn(4, 2))

    def test_must_be_2d(self):
        with pytest.raises(ValueError, match="b must be a 2-D tensor"):
            cos3_similarity(torch.randn(4, 3), torch.randn(12))
