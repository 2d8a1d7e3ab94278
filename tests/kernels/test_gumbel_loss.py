"""gumbel_bottleneck_loss: released-code semantics, parity and gradients on both paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cbm.kernels import gumbel_bottleneck_loss
from cbm.kernels.gumbel_loss import gumbel_loss_reference, sample_gumbel_noise

SHAPES = [(1, 1), (19, 23), (130, 70), (3, 300)]
# logits in low precision are exact inputs; the loss itself accumulates in fp32.
TOL = {torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}


def released_loss(logits, tau):
    """Sparse-CBM's released code: one gumbel_softmax per dim, then mean(-log)."""
    return 0.5 * sum(-torch.log(F.gumbel_softmax(logits, tau=tau, dim=d)).mean() for d in (0, 1))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_loss_and_gradient_match_float64(backend, device, assert_close, shape, dtype):
    logits = (3 * torch.randn(*shape, device=device)).to(dtype).requires_grad_()
    noise = sample_gumbel_noise(shape, device=device)
    loss = gumbel_bottleneck_loss(logits, tau=0.7, noise=noise)
    loss.backward()
    ref_logits = logits.detach().double().requires_grad_()
    ref = gumbel_loss_reference(ref_logits, noise, tau=0.7)
    ref.backward()
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert_close(loss, ref, TOL[dtype], TOL[dtype], "loss")
    assert logits.grad.dtype == dtype
    rounding = {torch.float32: 1e-5, torch.float16: 2**-10, torch.bfloat16: 2**-7}[dtype]
    assert_close(logits.grad, ref_logits.grad, 1e-7, rounding, "grad")


def test_same_draws_as_two_torch_gumbel_softmax_calls(backend, device, assert_close):
    logits = torch.randn(12, 9, device=device)
    torch.manual_seed(123)
    expected = released_loss(logits, 0.5)
    torch.manual_seed(123)
    assert_close(gumbel_bottleneck_loss(logits, 0.5), expected, 1e-5, 1e-5)


def test_generator_makes_it_reproducible(backend, device):
    logits = torch.randn(8, 6, device=device)
    draws = [
        gumbel_bottleneck_loss(logits, generator=torch.Generator(device).manual_seed(s))
        for s in (7, 7, 8)
    ]
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


def test_one_noise_tensor_serves_both_dims(backend, device):
    logits, g = torch.randn(10, 4, device=device), sample_gumbel_noise((10, 4), device=device)[0]
    shared = gumbel_bottleneck_loss(logits, noise=g)
    assert shared == gumbel_bottleneck_loss(logits, noise=torch.stack([g, g]))


def test_stable_where_log_of_softmax_overflows(backend, device):
    logits = torch.tensor([[0.0, 200.0], [300.0, -100.0]], device=device, requires_grad=True)
    zero = torch.zeros(2, 2, device=device)
    assert torch.isinf(-torch.log(torch.softmax(logits.detach(), dim=1))).any()
    loss = gumbel_bottleneck_loss(logits, tau=1.0, noise=zero)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


class TestErrors:
    def test_tau_must_be_positive(self):
        with pytest.raises(ValueError, match="tau must be a positive temperature; got 0"):
            gumbel_bottleneck_loss(torch.randn(2, 3), tau=0)

    def test_noise_shape(self):
        with pytest.raises(ValueError, match=r"noise must have shape \(2, 3\) or \(2, 2, 3\)"):
            gumbel_bottleneck_loss(torch.randn(2, 3), noise=torch.zeros(3, 2))

    def test_logits_must_be_2d(self):
        with pytest.raises(ValueError, match=r"logits must be a 2-D tensor"):
            gumbel_bottleneck_loss(torch.randn(5))
