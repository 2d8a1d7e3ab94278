"""LaBo: language-guided bottleneck with a softmax class-concept association (Yang et al., CVPR 2023).

Concept scores are cosine similarities between the image embedding and the concept text
embeddings, ``s(x) = I(x) T^T``. Each class owns a distribution over concepts,
``W = softmax(A, dim=concepts)``, initialised from the concepts generated for that class, and
``logits = scale * s(x) W^T``. The effective linear head is ``coef_ = scale * softmax(A)``.
``fit(X, y, sample_weight=w)`` weighs each sample's cross-entropy (and the optional diversity term's
variance, as frequency weights).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval

from cbm.bank import ConceptBank
from cbm.losses import concept_scores
from cbm.models._base import (
    BaseConceptModel,
    as_tensor,
    parameter_constraints,
    require_vectors,
    weighted_mean,
)
from cbm.models._early_stopping import EarlyStopping


def class_prior(bank: ConceptBank, classes: np.ndarray) -> np.ndarray | None:
    """The bank's class-concept prior (K, M) with its rows in the order of ``classes``, or None.

    Classes are matched to ``bank.classes`` by name (``str(label)``). Integer labels that are not
    names there are read as indices into ``bank.classes`` when every label is in
    ``0..len(bank.classes) - 1``; any other mismatch is refused with both sides listed, never
    matched by position. Without a prior, the provenance ``class``/``classes`` of each concept gives
    +1 for the classes it was generated for (matched by name).
    """
    names = [str(c) for c in classes]
    if bank.classes is not None and bank.prior is not None:
        if all(n in bank.classes for n in names):
            return bank.prior[[bank.classes.index(n) for n in names]].astype(np.float32)
        labels = np.asarray(classes)
        if np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0 and labels.max() < len(bank.classes):
            return bank.prior[labels.astype(int)].astype(np.float32)
        shown = ", ".join(repr(c) for c in bank.classes[:10]) + (" ..." if len(bank.classes) > 10 else "")
        missing = [n for n in names if n not in bank.classes]
        raise ValueError(
            f"The concept bank's prior names the classes [{shown}] but y has labels "
            f"{missing[:10]} that are none of them (nor indices 0..{len(bank.classes) - 1} into them). "
            "Fit with y given as those class names, or rebuild the bank's prior for your classes."
        )
    prior = np.zeros((len(names), len(bank)), np.float32)
    for j, prov in enumerate(bank.provenance):
        owners = prov.detail.get("classes") or [prov.detail.get("class")]
        for c in owners:
            if c is not None and str(c) in names:
                prior[names.index(str(c)), j] = 1.0
    return prior if prior.any() else None


def val_arrays(model: BaseConceptModel, X_val: Any, y_val: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Validation arrays as tensors with labels mapped to class indices (None when not given)."""
    if X_val is None:
        return None
    y_val = np.asarray(y_val)
    unknown = sorted(set(y_val.tolist()) - set(model.classes_.tolist()))
    if unknown:
        raise ValueError(f"y_val has labels not seen in y: {unknown[:5]}; use the same classes.")
    Xv = as_tensor(X_val, model.device_)
    if Xv.ndim != 2 or Xv.shape[1] != model.n_features_in_ or len(Xv) != len(y_val):
        raise ValueError(f"X_val must have shape (n, {model.n_features_in_}) matching y_val; got {tuple(Xv.shape)}.")
    return Xv, torch.as_tensor(np.searchsorted(model.classes_, y_val), device=model.device_)


class LaBo(BaseConceptModel):
    """LaBo: a class-concept association matrix under a softmax, on cosine concept scores.

    Parameters
    ----------
    concepts : ConceptBank
        Concepts with text-embedding ``vectors``; its prior (or provenance class) initialises A.
    scale : float, default=100
        Logit scale (CLIP's temperature).
    lr : float, default=1e-2
    max_epochs : int, default=300
    batch_size : int or None, default=None
        None trains full-batch.
    patience : int, default=30
        Early stopping on validation accuracy (``fit(..., X_val=, y_val=)``), in epochs.
    prior_init : bool, default=True
        ``A[y, c] = 1`` for the concepts generated for class y, else 0 (False: all zero).
    l1 : float, default=0
        Weight of released LaBo's sparsity term ``max_y |A_y|_1``, the largest L1 norm of a row of
        the association logits A (the released code computes it on A itself, not on softmax(A), and
        takes the max over classes). Off by default, as in the released configurations.
    diversity : float, default=0
        Weight of released LaBo's diversity term ``-mean_y var_batch((s W^T)_y)``: minus the
        variance over the batch of each class's (unscaled) score, averaged over classes. Off by
        default.
    random_state : int, RandomState or None, default=0
        Seeds the batch order (None: a fresh seed per fit).
    device : str, verbose : bool

    Attributes
    ----------
    association_ : ndarray of shape (K, M)
        The learned association logits A.
    n_iter_ : int
        Epochs run (fewer than ``max_epochs`` when early stopping ended training).
    """

    method = "labo"
    supports_vector_concepts = True
    vector_space = "unit embedding"
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", "verbose", positive=("scale", "lr"), non_negative=("l1", "diversity"),
        counts=("max_epochs", "patience"), batch_size=[Interval(Integral, 1, None, closed="left"), None],
        prior_init=["boolean"])

    def __init__(self, *, concepts: ConceptBank | None = None, scale: float = 100.0, lr: float = 1e-2,
                 max_epochs: int = 300, batch_size: int | None = None, patience: int = 30,
                 prior_init: bool = True, l1: float = 0.0, diversity: float = 0.0,
                 random_state: int = 0, device: str = "auto", verbose: bool = False):
        self._keep_params(locals())

    def _fit(self, X: torch.Tensor, y: torch.Tensor, X_val: Any = None, y_val: Any = None,
             sample_weight: torch.Tensor | None = None) -> None:
        from tqdm.auto import tqdm

        bank = require_vectors(self)
        self._vectors = as_tensor(bank.vectors, self.device_)
        K = len(self.classes_)
        A0 = torch.zeros(K, len(bank), device=self.device_)
        prior = class_prior(bank, self.classes_) if self.prior_init else None
        if prior is not None:
            A0 = torch.as_tensor(prior > 0, dtype=torch.float32, device=self.device_)
        A = torch.nn.Parameter(A0)
        opt = torch.optim.Adam([A], lr=self.lr)
        S = self._activations(X)
        val = val_arrays(self, X_val, y_val)
        Sv = None if val is None else self._activations(val[0])
        gen = torch.Generator(device="cpu").manual_seed(self._seed)
        bs = len(X) if self.batch_size is None else self.batch_size
        stop = EarlyStopping(self.patience)
        bar = tqdm(range(self.max_epochs), desc="LaBo", disable=not self.verbose)
        self.n_iter_ = 0
        for _ in bar:
            self.n_iter_ += 1
            for idx in torch.randperm(len(X), generator=gen).split(bs):
                idx = idx.to(self.device_)
                W = torch.softmax(A, dim=1)
                sim = S[idx] @ W.T
                ce = F.cross_entropy(self.scale * sim, y[idx], reduction="none")
                w = None if sample_weight is None else sample_weight[idx]
                loss = weighted_mean(ce, sample_weight, idx) + self._penalty(A, sim, w)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if Sv is not None:
                with torch.no_grad():
                    z = self.scale * Sv @ torch.softmax(A, 1).T
                    acc, vloss = (z.argmax(1) == val[1]).float().mean().item(), F.cross_entropy(z, val[1]).item()
                bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{acc:.3f}")
                if stop.update(acc, vloss, lambda: A.detach().clone()):
                    break
        A_final = stop.best_state if Sv is not None else A.detach()
        self.association_ = A_final.cpu().numpy()
        self.coef_ = self.scale * torch.softmax(A_final, 1).cpu().numpy()
        self.intercept_ = np.zeros(K, np.float32)
        self.base_concepts_ = bank
        self.best_val_accuracy_ = None if Sv is None else stop.best_accuracy

    def _penalty(self, A: torch.Tensor, sim: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Released LaBo's optional terms on the association logits A and the batch scores s W^T
        (the batch's sample weights, if any, are frequency weights of the variance)."""
        out = A.new_zeros(())
        if self.l1:
            out = out + self.l1 * torch.linalg.vector_norm(A, ord=1, dim=1).max()
        if self.diversity and len(sim) > 1:
            if weight is None:
                var = torch.var(sim, dim=0)
            else:  # unbiased with frequency weights: what repeating each sample w times gives
                mean = (sim * weight[:, None]).sum(0) / weight.sum()
                var = (((sim - mean) ** 2) * weight[:, None]).sum(0) / (weight.sum() - 1).clamp_min(1e-12)
            out = out - self.diversity * var.mean()
        return out

    def _concept_matrix(self) -> torch.Tensor:
        if getattr(self, "_vectors", None) is None or self._vectors.device != self._device():
            self._vectors = as_tensor(self.base_concepts_.vectors, self._device())
        return self._vectors

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        return concept_scores(X, self._concept_matrix())

    def _to_vector_space(self, X: torch.Tensor) -> torch.Tensor:
        return F.normalize(X, dim=1)

    def _score_vectors(self, X: torch.Tensor, vectors: torch.Tensor, intercepts: torch.Tensor) -> torch.Tensor:
        """``cos(x, v) + b / |v|``: the signed distance of the unit embedding to the vector's hyperplane
        (text concepts have b = 0, so this is their cosine)."""
        return concept_scores(X, vectors) + intercepts / vectors.norm(dim=1).clamp_min(1e-12)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"association": self.association_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.association_ = tensors["association"]
        self._vectors = None
