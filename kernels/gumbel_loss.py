"""Sparse-CBM's Gumbel-softmax concept bottleneck loss, without the two B x M softmax copies.

Released-code semantics: ``0.5 * sum(mean(-log(gumbel_softmax(logits, tau, dim))) for dim in (0, 1))``
where each ``gumbel_softmax`` call draws its own Gumbel noise. With ``z_d = (logits + g_d) / tau``,
``-log softmax(z, dim)`` is ``logsumexp(z, dim) - z``, so the loss is exactly

    0.5 * (mean_j lse_col_j(z_0) - mean(z_0) + mean_i lse_row_i(z_1) - mean(z_1))

and its gradient is ``(0.5 * (softmax_col(z_0) / M + softmax_row(z_1) / B) - 1 / (BM)) / tau``.
Both paths use this log-sum-exp form, stable where ``log(softmax)`` of the released code gives inf.

Paths
-----
* Triton: a row kernel and a column kernel stream over tiles keeping online log-sum-exps (B + M
  floats saved for backward); the backward kernel recomputes both softmaxes tile by tile.
* PyTorch (fallback): the same closed form through ``torch.logsumexp``, with the same analytic
  backward written in in-place torch ops.

Noise is sampled once in torch (``generator=`` for reproducibility) or passed as ``noise=``, so both
paths see identical inputs. Drawn from the global RNG, it matches ``F.gumbel_softmax`` draw for draw.
"""

from __future__ import annotations

import torch

from ._dispatch import HAS_TRITON, fallback, want_triton
from ._utils import KERNEL_DTYPES, block_for

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _gumbel_lse_kernel(
        x_ptr, g_ptr, lse_ptr, zsum_ptr, R, C, stride_r, stride_c, inv_tau,
        BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        # Online log-sum-exp over C for BLOCK_R lines; rows or columns depending on the strides.
        rr = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        m_i = tl.full((BLOCK_R,), -float("inf"), tl.float32)
        s_i = tl.zeros((BLOCK_R,), tl.float32)
        zs = tl.zeros((BLOCK_R,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + tl.arange(0, BLOCK_C)
            mask = (rr[:, None] < R) & (cc[None, :] < C)
            offs = rr[:, None] * stride_r + cc[None, :] * stride_c
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            z = (x + g) * inv_tau
            zs += tl.sum(tl.where(mask, z, 0.0), axis=1)
            z = tl.where(mask, z, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(z, axis=1))
            m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
            s_i = s_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(z - m_safe[:, None]), axis=1)
            m_i = m_new
        tl.store(lse_ptr + rr, m_i + tl.log(tl.where(rr < R, s_i, 1.0)), mask=rr < R)
        tl.store(zsum_ptr + rr, zs, mask=rr < R)

    @triton.jit
    def _gumbel_grad_kernel(
        x_ptr, g0_ptr, g1_ptr, lse_col_ptr, lse_row_ptr, grad_ptr, gout_ptr,
        B, M, inv_tau, BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr,
    ):
        rb = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        rm = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        mask = (rb[:, None] < B) & (rm[None, :] < M)
        offs = rb[:, None] * M + rm[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        z0 = (x + tl.load(g0_ptr + offs, mask=mask, other=0.0).to(tl.float32)) * inv_tau
        z1 = (x + tl.load(g1_ptr + offs, mask=mask, other=0.0).to(tl.float32)) * inv_tau
        lc = tl.load(lse_col_ptr + rm, mask=rm < M, other=0.0)
        lr = tl.load(lse_row_ptr + rb, mask=rb < B, other=0.0)
        p_col = tl.exp(z0 - lc[None, :])
        p_row = tl.exp(z1 - lr[:, None])
        gout = tl.load(gout_ptr).to(tl.float32)
        grad = (0.5 * (p_col / M + p_row / B) - 1.0 / (B * M)) * inv_tau * gout
        tl.store(grad_ptr + offs, grad.to(grad_ptr.dtype.element_ty), mask=mask)


def _lse(x, g, inv_tau, dim: int):
    """Triton log-sum-exp and sum of ``(x + g) * inv_tau`` along ``dim`` of a contiguous (B, M)."""
    b, m = x.shape
    lines, length = (m, b) if dim == 0 else (b, m)
    stride_r, stride_c = (1, m) if dim == 0 else (m, 1)
    lse = torch.empty(lines, dtype=torch.float32, device=x.device)
    zsum = torch.empty(lines, dtype=torch.float32, device=x.device)
    block_r, block_c = block_for(lines, 64), block_for(length, 128)
    _gumbel_lse_kernel[(triton.cdiv(lines, block_r),)](
        x, g, lse, zsum, lines, length, stride_r, stride_c, inv_tau,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=4,
    )
    return lse, zsum


class _GumbelLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, g0, g1, tau):
        inv_tau = 1.0 / float(tau)
        b, m = logits.shape
        lse_col, zsum0 = _lse(logits, g0, inv_tau, dim=0)
        lse_row, zsum1 = _lse(logits, g1, inv_tau, dim=1)
        loss = 0.5 * (lse_col.mean() - zsum0.sum() / (b * m) + lse_row.mean() - zsum1.sum() / (b * m))
        ctx.save_for_backward(logits, g0, g1, lse_col, lse_row)
        ctx.inv_tau = inv_tau
        return loss

    @staticmethod
    def backward(ctx, gout):
        logits, g0, g1, lse_col, lse_row = ctx.saved_tensors
        b, m = logits.shape
        grad = torch.empty_like(logits)
        block_b, block_m = block_for(b, 64), block_for(m, 128)
        grid = (triton.cdiv(b, block_b), triton.cdiv(m, block_m))
        _gumbel_grad_kernel[grid](
            logits, g0, g1, lse_col, lse_row, grad, gout.contiguous().float(), b, m, ctx.inv_tau,
            BLOCK_B=block_b, BLOCK_M=block_m, num_warps=4,
        )
        return grad, None, None, None


def gumbel_loss_reference(logits, noise, tau=1.0):
    """Released-code loss in float64 with explicit noise (2, B, M): the test oracle."""
    x = logits.double()
    terms = [
        -torch.log_softmax((x + noise[d].double()) / tau, dim=d).mean() for d in (0, 1)
    ]
    return 0.5 * (terms[0] + terms[1])


def sample_gumbel_noise(shape, generator=None, device=None) -> torch.Tensor:
    """Gumbel(0, 1) noise of ``(2, *shape)``: one draw per softmax, as ``F.gumbel_softmax`` draws."""
    noise = torch.empty((2, *shape), dtype=torch.float32, device=device)
    for d in (0, 1):  # two draws in the order of the released code's two calls
        noise[d].exponential_(generator=generator)
    return noise.log_().neg_()


def gumbel_bottleneck_loss(
    logits: torch.Tensor,
    tau: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sparse-CBM concept bottleneck loss: Gumbel-softmax over samples and over concepts.

    Parameters
    ----------
    logits : Tensor (B, M)
        Concept logits of a batch (differentiable).
    tau : float
        Gumbel-softmax temperature (> 0).
    generator : torch.Generator, optional
        Source of the Gumbel noise; default the global RNG (then it matches two
        ``F.gumbel_softmax`` calls, dim 0 first, draw for draw).
    noise : Tensor (2, B, M) or (B, M), optional
        Explicit Gumbel noise for the dim-0 and dim-1 softmax (one (B, M) tensor is used for both).
        Zero noise gives the deterministic loss.

    Returns
    -------
    Tensor, scalar float32.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a 2-D tensor (batch, concepts); got {shape}.")
    if not float(tau) > 0:
        raise ValueError(f"tau must be a positive temperature; got {tau!r}.")
    b, m = logits.shape
    if noise is None:
        noise = sample_gumbel_noise((b, m), generator=generator, device=logits.device)
    elif noise.shape == logits.shape:
        noise = noise.unsqueeze(0).expand(2, b, m)
    elif tuple(noise.shape) != (2, b, m):
        raise ValueError(
            f"noise must have shape ({b}, {m}) or (2, {b}, {m}) like logits; got {tuple(noise.shape)}."
        )
    if want_triton("gumbel_bottleneck_loss", logits, noise):
        if logits.dtype in KERNEL_DTYPES and b * m > 0:
            x = logits.contiguous()
            return _GumbelLoss.apply(x, noise[0].contiguous(), noise[1].contiguous(), float(tau))
        fallback("gumbel_bottleneck_loss", f"dtype {logits.dtype} or empty logits")
    return _torch_loss(logits, noise, float(tau))


class _TorchGumbelLoss(torch.autograd.Function):
    """PyTorch path: the closed form with an analytic backward (no autograd graph of B x M temps)."""

    @staticmethod
    def forward(ctx, logits, g0, g1, tau):
        inv_tau = 1.0 / tau
        x = logits.float()
        b, m = x.shape
        z0 = torch.add(x, g0).mul_(inv_tau)
        lse_col = torch.logsumexp(z0, dim=0)
        col = lse_col.mean() - z0.mean()
        del z0
        z1 = torch.add(x, g1).mul_(inv_tau)
        lse_row = torch.logsumexp(z1, dim=1)
        row = lse_row.mean() - z1.mean()
        ctx.save_for_backward(logits, g0, g1, lse_col, lse_row)
        ctx.inv_tau = inv_tau
        return 0.5 * (col + row)

    @staticmethod
    def backward(ctx, gout):
        logits, g0, g1, lse_col, lse_row = ctx.saved_tensors
        inv_tau = ctx.inv_tau
        x = logits.float()
        b, m = x.shape
        p_col = torch.add(x, g0).mul_(inv_tau).sub_(lse_col).exp_().mul_(0.5 / m)
        p_row = torch.add(x, g1).mul_(inv_tau).sub_(lse_row[:, None]).exp_().mul_(0.5 / b)
        grad = p_col.add_(p_row).sub_(1.0 / (b * m)).mul_(gout * inv_tau)
        return grad.to(logits.dtype), None, None, None


def _torch_loss(logits, noise, tau: float) -> torch.Tensor:
    return _TorchGumbelLoss.apply(logits, noise[0], noise[1], tau)
