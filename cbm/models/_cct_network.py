"""The Concept-Centric Transformer's torch network and its training costs, as released
(``ctc/loss.py``); :class:`cbm.models.cct.ConceptCentricTransformer` is the estimator around them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# -- losses (as released in ctc/loss.py) --------------------------------------------------------
def explanation_cost(concept_attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``M * MSE(attn, targets / targets.sum(-1))`` over images (N, M) with a usable target.

    A row whose targets contain NaN (unknown) or sum to 0 (no concept present) is ignored; with no
    usable row the cost is 0.
    """
    return _normalised_mse(concept_attn.reshape(-1, concept_attn.shape[-1]),
                           targets.reshape(-1, targets.shape[-1]))


def spatial_explanation_cost(spatial_attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The same cost per patch: attention (N, T, M) against patch targets (N, T, M); a patch
    with a NaN target (or none present) is ignored."""
    return explanation_cost(spatial_attn, targets)


def _normalised_mse(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    targets = targets.to(attn.dtype)
    norm = targets.sum(-1, keepdim=True)
    keep = torch.isfinite(norm).squeeze(-1) & (norm.squeeze(-1) > 0)
    if not bool(keep.any()):
        return attn.sum() * 0.0
    return attn.shape[-1] * F.mse_loss(attn[keep], targets[keep] / norm[keep], reduction="mean")


def presence_cost(spatial_attn: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Image-level labels of spatial concepts as multiple-instance targets: ``M * MSE`` between each
    concept's peak attention over the patches (N, T, M) -> (N, M) and its 0/1 label (N, M).

    A concept is present iff some patch shows it, so only the patches that hold it need attend to
    it. NaN labels are ignored; with none known the cost is 0.
    """
    peak = spatial_attn.amax(dim=1)
    labels = labels.to(peak.dtype)
    keep = torch.isfinite(labels)
    if not bool(keep.any()):
        return spatial_attn.sum() * 0.0
    return peak.shape[-1] * F.mse_loss(peak[keep], labels[keep], reduction="mean")


def entropy(p: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean elementwise ``-p log(p + eps)``."""
    return (-p * torch.log(p + eps)).mean()


def sparsity_cost(concept_attn: torch.Tensor | None = None,
                  spatial_attn: torch.Tensor | None = None) -> torch.Tensor | float:
    """Entropy sparsity cost: ``entropy(concept_attn) + entropy(spatial_attn)`` of those given."""
    cost: torch.Tensor | float = 0.0
    for a in (concept_attn, spatial_attn):
        if a is not None:
            cost = cost + entropy(a)
    return cost


# -- the network --------------------------------------------------------------------------------
class ConceptSlotAttention(nn.Module):
    """Slot attention with one learned initial slot per concept and a GRU update."""

    def __init__(self, n_slots: int, dim: int, n_iters: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.n_iters, self.eps, self.scale = n_iters, eps, dim ** -0.5
        self.slots_init = nn.Parameter(torch.randn(n_slots, dim) * dim ** -0.5)
        self.norm_inputs, self.norm_slots = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, dim) -> slots (B, M, dim)."""
        B, _, D = h.shape
        x = self.norm_inputs(h)
        k, v = self.k(x) * self.scale, self.v(x)
        slots = self.slots_init.unsqueeze(0).expand(B, -1, -1)
        for _ in range(self.n_iters):
            q = self.q(self.norm_slots(slots))
            attn = torch.softmax(k @ q.transpose(1, 2), dim=-1)   # (B, T, M): slots compete for tokens
            w = attn + self.eps
            w = w / w.sum(dim=1, keepdim=True)                      # weighted mean over tokens
            updates = w.transpose(1, 2) @ v                          # (B, M, D)
            slots = self.gru(updates.reshape(-1, D), slots.reshape(-1, D)).view(B, -1, D)
        return slots


class ConceptReadout(nn.Module):
    """Cross-attention from tokens (queries) to concept slots (keys, values), averaged over tokens.

    With ``background`` a learned extra key lets a token attend to none of the concepts.
    """

    def __init__(self, dim: int, n_classes: int, n_heads: int, background: bool = False) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, n_classes)
        if background:
            self.background = nn.Parameter(torch.randn(1, dim) * dim ** -0.5)

    def forward(self, h: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        B, T, _ = h.shape
        H, dh = self.n_heads, self.head_dim
        if hasattr(self, "background"):
            s = torch.cat([s, self.background.expand(B, 1, -1)], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(1)])
        M = s.shape[1]
        q = self.q(h).view(B, T, H, dh).transpose(1, 2)                       # (B, H, T, dh)
        k, v = self.kv(s).view(B, M, 2, H, dh).permute(2, 0, 3, 1, 4)         # (B, H, M, dh) each
        scores = (q @ k.transpose(-1, -2)) * dh ** -0.5                        # (B, H, T, M)
        if mask is not None:
            scores = scores.masked_fill(~mask.view(1, 1, 1, M), float("-inf"))
        head_attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # every concept masked: no attention
        pooled = head_attn.mean(dim=2)                                         # (B, H, M)
        # proj(mean_t(attn @ v)) = sum_{h,m} pooled[h, m] * (v[h, m] . W[:, head h]) + b
        W = self.proj.weight.view(-1, H, dh)                                   # (K, H, dh)
        value_logits = torch.einsum("bhmd,khd->bhmk", v, W)                    # (B, H, M, K)
        contrib = (pooled.unsqueeze(-1) * value_logits).sum(1)                 # (B, M, K)
        return {"logits": contrib.sum(1) + self.proj.bias, "attn": head_attn.mean(1),
                "scores": pooled.mean(1), "contrib": contrib, "value_logits": value_logits.mean(1)}


class CCTNet(nn.Module):
    """Token projection, then two streams as released: global concepts read from per-image slots
    (slot attention), spatial concepts from learned embeddings; their logits add up."""

    def __init__(self, d_in: int, dim: int, n_concepts: int, n_classes: int, n_heads: int,
                 n_iters: int, variant: str, spatial: list[bool] | None = None) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, dim))
        static = torch.tensor([variant == "ct" or bool(spatial and spatial[m]) for m in range(n_concepts)])
        gidx, sidx = torch.nonzero(~static).flatten(), torch.nonzero(static).flatten()
        self.register_buffer("global_idx", gidx, persistent=False)
        self.register_buffer("spatial_idx", sidx, persistent=False)
        self.register_buffer("order", torch.argsort(torch.cat([gidx, sidx])), persistent=False)
        if len(gidx):
            self.slot_attention = ConceptSlotAttention(len(gidx), dim, n_iters)
            self.global_readout = ConceptReadout(dim, n_classes, n_heads)
        if len(sidx):
            self.concepts = nn.Parameter(torch.randn(len(sidx), dim) * dim ** -0.5)
            self.spatial_readout = ConceptReadout(dim, n_classes, n_heads, background=variant == "cct")

    @property
    def has_background(self) -> bool:
        return hasattr(self, "spatial_readout") and hasattr(self.spatial_readout, "background")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Tokens (B, T, d_in) -> logits (B, K), attn (B, T, M), concept scores (B, M), contributions
        (B, M, K), value logits (B, M, K), background attention (B, T) and contribution (B, K)."""
        B, T, _ = x.shape
        h = self.embed(x)
        streams = []
        if hasattr(self, "slot_attention"):
            m = None if mask is None else mask[self.global_idx]
            streams.append(self.global_readout(h, self.slot_attention(h), m))
        if hasattr(self, "concepts"):
            m = None if mask is None else mask[self.spatial_idx]
            streams.append(self.spatial_readout(h, self.concepts.unsqueeze(0).expand(B, -1, -1), m))
        K = streams[0]["logits"].shape[1]
        out = {"logits": sum(st["logits"] for st in streams),
               "background_attn": h.new_zeros(B, T), "background": h.new_zeros(B, K)}
        if self.has_background:
            sp = streams[-1]
            out["background_attn"], out["background"] = sp["attn"][..., -1], sp["contrib"][:, -1]
            streams[-1] = {k: v[:, :, :-1] if k == "attn" else v[:, :-1]
                           for k, v in sp.items() if k != "logits"}
        for key, dim in (("attn", 2), ("scores", 1), ("contrib", 1), ("value_logits", 1)):
            out[key] = torch.cat([st[key] for st in streams], dim=dim).index_select(dim, self.order)
        return out

    def explanation_costs(self, out: dict[str, torch.Tensor], concept_labels: torch.Tensor | None,
                          spatial_labels: torch.Tensor | None, spatial_pooling: str = "mean") -> torch.Tensor | float:
        """Released costs per stream: global concepts' scores against their normalised labels;
        spatial concepts' (and the background's, labelled "no spatial concept present") likewise, or
        with ``spatial_pooling="max"`` :func:`presence_cost` of their peak attention; per-patch
        targets through the spatial cost."""
        cost: torch.Tensor | float = 0.0
        g, s = self.global_idx, self.spatial_idx
        if concept_labels is not None:
            if len(g):
                cost = cost + explanation_cost(out["scores"][:, g], concept_labels[:, g])
            if len(s) and spatial_pooling == "max":
                cost = cost + presence_cost(out["attn"][:, :, s], concept_labels[:, s])
            elif len(s):
                att, lab = out["scores"][:, s], concept_labels[:, s]
                if self.has_background:
                    att = torch.cat([att, out["attn"].new_ones(len(att), 1) - att.sum(1, keepdim=True)], 1)
                    lab = torch.cat([lab, (lab.sum(1, keepdim=True) == 0).to(lab.dtype)], 1)
                cost = cost + explanation_cost(att, lab)
        if spatial_labels is not None:
            cost = cost + spatial_explanation_cost(out["attn"], spatial_labels)
        return cost
