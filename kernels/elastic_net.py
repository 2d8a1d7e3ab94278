"""Elastic-net proximal gradient step: gradient step, soft-threshold and L2 shrink in one pass.

``prox(W) = soft_threshold(W - lr * grad, lr * l1) / (1 + lr * l2)`` with
``soft_threshold(x, t) = sign(x) * max(|x| - t, 0)``: the update GLM-SAGA style sparse heads
(LF-CBM, Sparse-CBM's final layer) apply every step.

Paths
-----
* Triton: one elementwise kernel (read W and grad once, write once).
* PyTorch (fallback): ``soft_threshold(x, t) = x - clamp(x, -t, t)``, computed in place in ``out`` with
  a single temporary, instead of the four temporaries of the textbook expression.
"""

from __future__ import annotations

import torch

from ._dispatch import HAS_TRITON, fallback, want_triton
from ._utils import KERNEL_DTYPES

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _elastic_net_prox_kernel(
        w_ptr, g_ptr, out_ptr, n, lr, thresh, shrink, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x = w - lr * g
        y = tl.where(x > thresh, x - thresh, tl.where(x < -thresh, x + thresh, 0.0)) * shrink
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def elastic_net_prox_reference(W, grad, lr, l1, l2):
    """The textbook expression in float64: the test oracle and the eager baseline."""
    x = W.double() - lr * grad.double()
    return torch.sign(x) * torch.clamp(x.abs() - lr * l1, min=0) / (1 + lr * l2)


def elastic_net_prox(
    W: torch.Tensor,
    grad: torch.Tensor,
    lr: float,
    l1: float,
    l2: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One proximal gradient step of the elastic net penalty ``l1 |W|_1 + l2/2 |W|_2^2``.

    Parameters
    ----------
    W, grad : Tensor, same shape
        Weights and the gradient of the smooth loss at ``W``.
    lr, l1, l2 : float
        Step size and the L1 / L2 strengths (>= 0).
    out : Tensor, optional
        Where to write the result (may be ``W`` itself for an in-place update).

    Returns
    -------
    Tensor shaped like ``W`` (``out`` when given), dtype of ``W``.
    """
    if not isinstance(W, torch.Tensor) or not isinstance(grad, torch.Tensor):
        raise TypeError(f"W and grad must be tensors; got {type(W).__name__} and {type(grad).__name__}.")
    if W.shape != grad.shape:
        raise ValueError(f"grad has shape {tuple(grad.shape)} but W has shape {tuple(W.shape)}.")
    for name, val in (("lr", lr), ("l1", l1), ("l2", l2)):
        if not float(val) >= 0:
            raise ValueError(f"{name} must be a non-negative float; got {val!r}.")
    if out is None:
        out = torch.empty_like(W, memory_format=torch.contiguous_format)
    elif out.shape != W.shape or out.dtype != W.dtype or out.device != W.device:
        raise ValueError(
            f"out must match W (shape {tuple(W.shape)}, {W.dtype}, {W.device}); got "
            f"shape {tuple(out.shape)}, {out.dtype}, {out.device}."
        )
    lr, thresh, shrink = float(lr), float(lr) * float(l1), 1.0 / (1.0 + float(lr) * float(l2))
    if want_triton("elastic_net_prox", W, grad, out):
        if W.dtype in KERNEL_DTYPES and out.is_contiguous() and W.numel() > 0:
            n = W.numel()
            block = 1024
            _elastic_net_prox_kernel[(triton.cdiv(n, block),)](
                W.contiguous(), grad.contiguous(), out, n, lr, thresh, shrink, BLOCK=block,
            )
            return out
        fallback("elastic_net_prox", f"dtype {W.dtype}, non-contiguous out or empty W")
    with torch.no_grad():
        if W.dtype in (torch.float32, torch.float64):
            torch.add(W, grad, alpha=-lr, out=out)
            clipped = out.clamp(-thresh, thresh)
            return out.sub_(clipped).mul_(shrink)
        # fp16/bf16: compute in fp32 and round once, exactly like the Triton kernel
        x = torch.add(W.float(), grad.float(), alpha=-lr)
        x.sub_(x.clamp(-thresh, thresh)).mul_(shrink)
        return out.copy_(x)
