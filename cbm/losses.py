"""Training objectives of the concept bottleneck methods.

Sparse-CBM's concept-bottleneck-layer (CBL) objectives (Semenov et al., 2024), KnoBo's prior loss
(Yang et al., 2024) and an L1 penalty. The Gumbel and cos^3 objectives are thin wrappers over
:mod:`cbm.kernels` (fused kernels on GPU, PyTorch reference elsewhere).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cbm import kernels

#: Sparse-CBM CBL objectives accepted by ``SparseCBM(objective=...)``.
CBL_OBJECTIVES = ("gumbel", "contrastive", "l1", "cos3")


def concept_scores(images: torch.Tensor, concepts: torch.Tensor, *, scale: float = 1.0,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """``scale * cos(images, concepts) + bias`` (N, M) through :func:`cbm.kernels.concept_scores`."""
    return kernels.concept_scores(images, concepts, scale=scale, bias=bias, normalize=True)


def gumbel_loss(logits: torch.Tensor, tau: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sparse-CBM's Gumbel-softmax CBL loss (soft samples, as released); see the kernel."""
    return kernels.gumbel_bottleneck_loss(logits, tau=tau, generator=generator)


def cos3_loss(scores: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """Negative mean cos^3 similarity between concept scores and CBL outputs (B, M) each."""
    return -kernels.cos3_similarity(scores, activations).mean()


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """CLIP-style loss on the diagonal of CBL logits (B, M), both directions, as released.

    ``-(mean diag log_softmax(logits, 0) + mean diag log_softmax(logits, 1)) / 2``; with B != M
    the diagonal has min(B, M) entries.
    """
    d0 = torch.diagonal(F.log_softmax(logits, dim=0))
    d1 = torch.diagonal(F.log_softmax(logits, dim=1))
    return -(d0.mean() + d1.mean()) / 2


def l1_penalty(weight: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam * sum |W| / n_columns`` (Sparse-CBM's L1 CBL objective divides by M)."""
    return lam * weight.abs().sum() / weight.shape[-1]


def prior_loss(weight: torch.Tensor, prior: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KnoBo's prior term ``mean |tanh(W) - P|`` over the entries where ``mask`` is true."""
    diff = (torch.tanh(weight) - prior).abs()
    return diff.mean() if mask is None else diff[mask].mean() if mask.any() else diff.sum() * 0


def cbl_loss(objective: str, *, cbl_logits: torch.Tensor, scores: torch.Tensor,
             cbl_weight: torch.Tensor, l1_lambda: float = 1e-3, tau: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The CBL loss selected by ``objective`` (one of :data:`CBL_OBJECTIVES`)."""
    if objective == "gumbel":
        return gumbel_loss(cbl_logits, tau=tau, generator=generator)
    if objective == "contrastive":
        return contrastive_loss(cbl_logits)
    if objective == "l1":
        return l1_penalty(cbl_weight, l1_lambda)
    if objective == "cos3":
        return cos3_loss(scores, cbl_logits)
    raise ValueError(f"Unknown CBL objective {objective!r}; choose one of {CBL_OBJECTIVES}.")


__all__ = ["CBL_OBJECTIVES", "cbl_loss", "concept_scores", "contrastive_loss", "cos3_loss",
           "gumbel_loss", "l1_penalty", "prior_loss"]
