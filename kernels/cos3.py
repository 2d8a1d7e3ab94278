"""Label-free CBM's cos^3 similarity between two activation matrices, per concept column.

``cos3(a, b)[j] = <u_j, v_j> / (|u_j| |v_j|)`` with ``u = (a - mean_0 a)^3`` and
``v = (b - mean_0 b)^3`` (mean over the batch, cube element-wise). Cubing emphasises the images that
activate a concept strongly, which is what LF-CBM's projection step rewards.

Gradient, with ``c = cos3``, ``h_a = 3 a_c^2 (v/|v| - c u/|u|) / |u|``:
``d c / d a = h_a - mean_0 h_a`` (the mean removal projects out the centring), symmetric in b.

Paths
-----
* Triton: each program owns a block of columns and streams down the batch: forward in two passes
  (column means, then the three dot products), backward in two passes (mean of ``h``, then write).
  Only (M,)-sized statistics are saved for backward.
* PyTorch (fallback): the released formula through autograd.
"""

from __future__ import annotations

import torch

from ._dispatch import HAS_TRITON, fallback, want_triton
from ._utils import KERNEL_DTYPES, block_for

EPS = 1e-12  # a constant column has no direction; its similarity is 0 instead of NaN

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _cos3_fwd_kernel(
        a_ptr, b_ptr, cos_ptr, stats_ptr, B, M, eps,
        BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr,
    ):
        rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        mmask = rm < M
        sa = tl.zeros((BLOCK_M,), tl.float32)
        sb = tl.zeros((BLOCK_M,), tl.float32)
        for b0 in range(0, B, BLOCK_B):
            rb = b0 + tl.arange(0, BLOCK_B)
            mask = (rb[:, None] < B) & mmask[None, :]
            offs = rb[:, None] * M + rm[None, :]
            sa += tl.sum(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32), axis=0)
            sb += tl.sum(tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32), axis=0)
        mean_a = sa / B
        mean_b = sb / B
        uv = tl.zeros((BLOCK_M,), tl.float32)
        uu = tl.zeros((BLOCK_M,), tl.float32)
        vv = tl.zeros((BLOCK_M,), tl.float32)
        for b0 in range(0, B, BLOCK_B):
            rb = b0 + tl.arange(0, BLOCK_B)
            mask = (rb[:, None] < B) & mmask[None, :]
            offs = rb[:, None] * M + rm[None, :]
            ac = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_a[None, :]
            bc = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_b[None, :]
            u = tl.where(mask, ac * ac * ac, 0.0)
            v = tl.where(mask, bc * bc * bc, 0.0)
            uv += tl.sum(u * v, axis=0)
            uu += tl.sum(u * u, axis=0)
            vv += tl.sum(v * v, axis=0)
        nu = tl.maximum(tl.sqrt(uu), eps)
        nv = tl.maximum(tl.sqrt(vv), eps)
        tl.store(cos_ptr + rm, uv / (nu * nv), mask=mmask)
        tl.store(stats_ptr + 0 * M + rm, mean_a, mask=mmask)
        tl.store(stats_ptr + 1 * M + rm, mean_b, mask=mmask)
        tl.store(stats_ptr + 2 * M + rm, nu, mask=mmask)
        tl.store(stats_ptr + 3 * M + rm, nv, mask=mmask)

    @triton.jit
    def _cos3_h(ac, bc, cos, nu, nv):
        u = ac * ac * ac
        v = bc * bc * bc
        ha = 3.0 * ac * ac * (v / nv - cos * u / nu) / nu
        hb = 3.0 * bc * bc * (u / nu - cos * v / nv) / nv
        return ha, hb

    @triton.jit
    def _cos3_bwd_kernel(
        a_ptr, b_ptr, cos_ptr, stats_ptr, gout_ptr, ga_ptr, gb_ptr, B, M,
        BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr,
    ):
        rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        mmask = rm < M
        mean_a = tl.load(stats_ptr + 0 * M + rm, mask=mmask, other=0.0)[None, :]
        mean_b = tl.load(stats_ptr + 1 * M + rm, mask=mmask, other=0.0)[None, :]
        nu = tl.load(stats_ptr + 2 * M + rm, mask=mmask, other=1.0)[None, :]
        nv = tl.load(stats_ptr + 3 * M + rm, mask=mmask, other=1.0)[None, :]
        cos = tl.load(cos_ptr + rm, mask=mmask, other=0.0)[None, :]
        gout = tl.load(gout_ptr + rm, mask=mmask, other=0.0).to(tl.float32)
        sha = tl.zeros((BLOCK_M,), tl.float32)
        shb = tl.zeros((BLOCK_M,), tl.float32)
        for b0 in range(0, B, BLOCK_B):
            rb = b0 + tl.arange(0, BLOCK_B)
            mask = (rb[:, None] < B) & mmask[None, :]
            offs = rb[:, None] * M + rm[None, :]
            ac = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_a
            bc = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_b
            ha, hb = _cos3_h(ac, bc, cos, nu, nv)
            sha += tl.sum(tl.where(mask, ha, 0.0), axis=0)
            shb += tl.sum(tl.where(mask, hb, 0.0), axis=0)
        mha = (sha / B)[None, :]
        mhb = (shb / B)[None, :]
        for b0 in range(0, B, BLOCK_B):
            rb = b0 + tl.arange(0, BLOCK_B)
            mask = (rb[:, None] < B) & mmask[None, :]
            offs = rb[:, None] * M + rm[None, :]
            ac = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_a
            bc = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean_b
            ha, hb = _cos3_h(ac, bc, cos, nu, nv)
            ga = (ha - mha) * gout[None, :]
            gb = (hb - mhb) * gout[None, :]
            tl.store(ga_ptr + offs, ga.to(ga_ptr.dtype.element_ty), mask=mask)
            tl.store(gb_ptr + offs, gb.to(gb_ptr.dtype.element_ty), mask=mask)


def _blocks(b: int, m: int) -> tuple[int, int]:
    return block_for(b, 64), block_for(m, 64)


class _Cos3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        bsz, m = a.shape
        cos = torch.empty(m, dtype=torch.float32, device=a.device)
        stats = torch.empty(4, m, dtype=torch.float32, device=a.device)
        block_b, block_m = _blocks(bsz, m)
        _cos3_fwd_kernel[(triton.cdiv(m, block_m),)](
            a, b, cos, stats, bsz, m, EPS, BLOCK_B=block_b, BLOCK_M=block_m, num_warps=4,
        )
        ctx.save_for_backward(a, b, cos, stats)
        return cos

    @staticmethod
    def backward(ctx, gout):
        a, b, cos, stats = ctx.saved_tensors
        bsz, m = a.shape
        ga, gb = torch.empty_like(a), torch.empty_like(b)
        block_b, block_m = _blocks(bsz, m)
        _cos3_bwd_kernel[(triton.cdiv(m, block_m),)](
            a, b, cos, stats, gout.contiguous(), ga, gb, bsz, m,
            BLOCK_B=block_b, BLOCK_M=block_m, num_warps=4,
        )
        return ga, gb


def cos3_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The released LF-CBM ``cos_similarity_cubed_single`` in float64: the test oracle."""
    u = (a.double() - a.double().mean(0, keepdim=True)) ** 3
    v = (b.double() - b.double().mean(0, keepdim=True)) ** 3
    u = u / u.norm(dim=0, keepdim=True).clamp_min(EPS)
    v = v / v.norm(dim=0, keepdim=True).clamp_min(EPS)
    return (u * v).sum(0)


def cos3_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-concept cos^3 similarity of two (B, M) activation matrices (Label-free CBM).

    Parameters
    ----------
    a, b : Tensor (B, M)
        Activations of the same batch, e.g. CLIP concept scores and the bottleneck's outputs.
        Differentiable in both.

    Returns
    -------
    Tensor (M,) float32 in [-1, 1]; LF-CBM maximises its mean.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 2-D tensor (batch, concepts); got {shape}.")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}.")
    if want_triton("cos3_similarity", a, b):
        if a.dtype in KERNEL_DTYPES and b.dtype in KERNEL_DTYPES and a.numel() > 0:
            return _Cos3.apply(a.contiguous(), b.contiguous())
        fallback("cos3_similarity", f"dtypes {a.dtype}/{b.dtype} or empty input")
    return _torch_cos3(a, b)


def _torch_cos3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    af, bf = a.float(), b.float()  # one cast each: the gradient is rounded to a's dtype once
    u = (af - af.mean(0, keepdim=True)).pow(3)
    v = (bf - bf.mean(0, keepdim=True)).pow(3)
    nu = torch.linalg.vector_norm(u, dim=0).clamp_min(EPS)
    nv = torch.linalg.vector_norm(v, dim=0).clamp_min(EPS)
    return (u * v).sum(0) / (nu * nv)
