"""Sparse-CBM: a concept bottleneck layer trained with Gumbel tricks (Semenov et al., 2024).

Concept scores are CLIP-style logits ``s = logit_scale * cos(I(x), T(c))`` (B, M), computed once
from the bank's text embeddings (the released code re-encodes the concept texts every batch).
A concept bottleneck layer (CBL) maps them to ``Z = s W_cbl^T`` (M x M, no bias) and a head
gives ``logits = Z W_h^T`` (no bias). The CBL is trained by its own objective plus the
cross-entropy, with its own optimiser; the head by the cross-entropy:

* ``"gumbel"``: mean -log Gumbel-softmax over the batch and concept axes (released soft variant);
* ``"contrastive"``: CLIP-style diagonal loss on the CBL logits;
* ``"l1"``: ``l1_lambda * |W_cbl|_1 / M``;
* ``"cos3"``: negative cos^3 similarity between CBL outputs and concept scores.

``fit(X, y, sample_weight=w)`` weighs each sample's cross-entropy; the CBL objectives are
batch-level (Gumbel-softmax over the batch, contrastive, L1 on the weights) and stay unweighted.

``transform`` returns Z, named by the bank's concepts (the CBL starts as the identity by
default, so column j stays "about" concept j); ``coef_`` is W_h.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import StrOptions

from cbm.bank import ConceptBank
from cbm.losses import CBL_OBJECTIVES, cbl_loss, concept_scores
from cbm.models._base import (
    BaseConceptModel,
    as_tensor,
    parameter_constraints,
    require_vectors,
    weighted_mean,
)
from cbm.models._early_stopping import EarlyStopping
from cbm.models.labo import val_arrays


class SparseCBM(BaseConceptModel):
    """Sparse concept bottleneck model on frozen image/text embeddings.

    Parameters
    ----------
    concepts : ConceptBank
        Concepts with text-embedding ``vectors`` (same space as X).
    objective : {"gumbel", "contrastive", "l1", "cos3"}, default="gumbel"
    logit_scale : float, default=100
    lr, cbl_lr : float, default=1e-2, 1e-3
        Learning rates of the head and of the CBL (separate Adam optimisers).
    l1_lambda : float, default=1e-3
        Weight of the ``"l1"`` objective.
    tau : float, default=1
        Gumbel-softmax temperature.
    cbl_init : {"identity", "random"}, default="identity"
        "random" is the released nn.Linear initialisation; "identity" keeps Z's columns aligned
        with the named concepts from the first step.
    max_epochs : int, default=100
    batch_size : int, default=64
    patience : int, default=20
        Early stopping on validation accuracy when ``fit(..., X_val=, y_val=)`` is given.
    random_state : int, RandomState or None, default=0
        Seeds the initialisation, batch order and Gumbel noise (None: a fresh seed per fit).
    device : str, verbose : bool

    Attributes
    ----------
    n_iter_ : int
        Epochs run.
    cbl_weight_ : ndarray of shape (M, M)
    history_ : list of dict
        Per-epoch losses (and validation accuracy).
    """

    method = "sparse-cbm"
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", "verbose", positive=("logit_scale", "lr", "cbl_lr", "tau"), non_negative=("l1_lambda",),
        counts=("max_epochs", "batch_size", "patience"), objective=[StrOptions(set(CBL_OBJECTIVES))],
        cbl_init=[StrOptions({"identity", "random"})])

    def __init__(self, *, concepts: ConceptBank | None = None, objective: str = "gumbel",
                 logit_scale: float = 100.0, lr: float = 1e-2, cbl_lr: float = 1e-3,
                 l1_lambda: float = 1e-3, tau: float = 1.0, cbl_init: str = "identity",
                 max_epochs: int = 100, batch_size: int = 64, patience: int = 20,
                 random_state: int = 0, device: str = "auto", verbose: bool = False):
        self._keep_params(locals())

    def _fit(self, X: torch.Tensor, y: torch.Tensor, X_val: Any = None, y_val: Any = None,
             sample_weight: torch.Tensor | None = None) -> None:
        bank = require_vectors(self)
        self._vectors = as_tensor(bank.vectors, self.device_)
        M, K = len(bank), len(self.classes_)
        gen = torch.Generator(device="cpu").manual_seed(self._seed)
        cbl = _linear(M, M, gen, self.device_)
        if self.cbl_init == "identity":
            torch.nn.init.eye_(cbl.weight)
        head = _linear(M, K, gen, self.device_)
        S = self._scores(X)  # cached once: text embeddings are never re-encoded per batch
        val = val_arrays(self, X_val, y_val)
        Sv = None if val is None else self._scores(val[0])
        self.history_ = self._train(cbl, head, S, y, Sv, val, sample_weight)
        self.cbl_weight_ = cbl.weight.detach().cpu().numpy()
        self.coef_ = head.weight.detach().cpu().numpy()
        self.intercept_ = np.zeros(K, np.float32)
        self.base_concepts_ = bank

    def _train(self, cbl, head, S, y, Sv, val, sample_weight: torch.Tensor | None = None) -> list[dict]:
        from tqdm.auto import tqdm

        opt_cbl = torch.optim.Adam(cbl.parameters(), lr=self.cbl_lr)
        opt_head = torch.optim.Adam(head.parameters(), lr=self.lr)
        gen = torch.Generator(device="cpu").manual_seed(self._seed + 1)
        noise_gen = torch.Generator(device=S.device).manual_seed(self._seed)
        history, stop = [], EarlyStopping(self.patience)
        bar = tqdm(range(self.max_epochs), desc=f"Sparse-CBM ({self.objective})", disable=not self.verbose)
        for epoch in bar:
            tot_ce = tot_cbl = 0.0
            for idx in torch.randperm(len(S), generator=gen).split(self.batch_size):
                s = S[idx.to(S.device)]
                z = cbl(s)
                c_loss = cbl_loss(self.objective, cbl_logits=z, scores=s, cbl_weight=cbl.weight,
                                  l1_lambda=self.l1_lambda, tau=self.tau, generator=noise_gen)
                idx = idx.to(S.device)
                ce = weighted_mean(F.cross_entropy(head(z), y[idx], reduction="none"), sample_weight, idx)
                opt_cbl.zero_grad()
                opt_head.zero_grad()
                (c_loss + ce).backward()
                opt_cbl.step()
                opt_head.step()
                tot_ce += ce.item() * len(idx)
                tot_cbl += c_loss.item() * len(idx)
            rec = {"epoch": epoch, "ce": tot_ce / len(S), "cbl": tot_cbl / len(S)}
            if Sv is not None:
                with torch.no_grad():
                    zv = head(cbl(Sv))
                    rec["val_accuracy"] = (zv.argmax(1) == val[1]).float().mean().item()
                    rec["val_ce"] = F.cross_entropy(zv, val[1]).item()
            history.append(rec)
            self.n_iter_ = epoch + 1
            bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k != "epoch"})
            if Sv is not None and stop.update(rec["val_accuracy"], rec["val_ce"],
                                              lambda: (cbl.weight.detach().clone(), head.weight.detach().clone())):
                break
        if stop.best_state is not None:
            with torch.no_grad():
                cbl.weight.copy_(stop.best_state[0])
                head.weight.copy_(stop.best_state[1])
        return history

    def _concept_matrix(self) -> torch.Tensor:
        if getattr(self, "_vectors", None) is None or self._vectors.device != self._device():
            self._vectors = as_tensor(self.base_concepts_.vectors, self._device())
        return self._vectors

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        """CLIP-style concept logits ``logit_scale * cos(X, T(c))`` (N, M)."""
        return concept_scores(X, self._concept_matrix(), scale=self.logit_scale)

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        W = as_tensor(self.cbl_weight_, X.device)
        return self._scores(X) @ W.T

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"cbl_weight": self.cbl_weight_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.cbl_weight_ = tensors["cbl_weight"].astype(np.float32)
        self._vectors = None


def _linear(n_in: int, n_out: int, gen: torch.Generator, device: torch.device) -> torch.nn.Linear:
    """``nn.Linear(n_in, n_out, bias=False)`` with its default U(-1/sqrt(n_in), 1/sqrt(n_in)) weights
    drawn from ``gen``, so torch's global generator is never touched."""
    layer = torch.nn.Linear(n_in, n_out, bias=False, device="meta").to_empty(device=device)
    bound = 1.0 / max(n_in, 1) ** 0.5
    with torch.no_grad():
        layer.weight.copy_((torch.rand(n_out, n_in, generator=gen) * 2 - 1).mul_(bound).to(device))
    return layer
