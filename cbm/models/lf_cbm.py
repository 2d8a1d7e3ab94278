"""Label-free CBM (Oikarinen et al., ICLR 2023): a learned concept layer and a sparse final layer.

Steps, and where each follows the released code (``train_cbm.py``):

1. CLIP concept scores ``P = concept_scores(clip_image_embeddings, concept text embeddings)``
   (cosines of normalised embeddings, as released).
2. Activation cut-off (released): drop concepts whose mean top-5 CLIP score over the training
   images is below ``clip_cutoff`` (0.25).
3. Projection (released): ``Q = F W_c^T`` without bias, Adam (lr 1e-3) on random batches
   maximising the mean cos^3 similarity (:func:`cbm.kernels.cos3_similarity`) between ``Q`` and ``P``,
   keeping the weights with the best validation similarity (checked every 50 steps, stop when it
   stops improving).
4. Interpretability cut-off (released): drop concepts whose validation cos^3 similarity is below
   ``interpretability_cutoff`` (0.45), and the matching rows of ``W_c``.
5. Standardise the activations with the training mean and std (released; folded into
   :meth:`transform`, so the head reads standardised activations).
6. Sparse final layer (paper: GLM-SAGA): ``CE + lam (alpha |W|_1 + (1 - alpha)/2 |W|^2)`` with
   alpha 0.99, solved by :func:`cbm.solvers.elastic_net_path` (full-batch FISTA with restarts;
   a warm-started, screened regularisation path when ``n_lambdas > 1``). The released code runs
   glm-saga at a single lambda (``epsilon=1, k=1``) equal to ``lam / alpha``; here ``lam`` is used
   as given.

Without ``X_val`` a ``val_fraction`` of the training set is held out for steps 3-4 (the head is then
fitted on the rest), so the cut-offs never see the samples they are judged on.

``fit(X, y, sample_weight=w)`` weighs the label-dependent steps: the standardisation (weighted mean
and std) and each sample's CE term in the final layer. Steps 2-4 read no labels and stay
unweighted; the hold-out is drawn per row, so a repeated row is not the same as an integer weight.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from cbm import kernels
from cbm.bank import ConceptBank
from cbm.models._base import BaseConceptModel, as_tensor, parameter_constraints
from cbm.models.pcbm import fit_head


class LabelFreeCBM(BaseConceptModel):
    """Label-free CBM: concept layer learned from CLIP concept scores, sparse final layer.

    Parameters
    ----------
    concepts : ConceptBank
        Concepts whose ``vectors`` are CLIP text embeddings (same space as the CLIP image embeddings).
    clip_cutoff : float, default=0.25
        Activation cut-off on the mean top-5 CLIP score of a concept.
    interpretability_cutoff : float, default=0.45
        Minimum validation cos^3 similarity for a concept to be kept.
    proj_steps : int, default=1000
    proj_lr : float, default=1e-3
    proj_batch_size : int, default=50000
    lam : float, default=7e-4
    alpha : float in [0, 1], default=0.99
    n_lambdas : int, default=1
        Points on the warm-started regularisation path of the final layer. 1 solves at ``lam``
        directly (as the released code runs glm-saga): at lam 7e-4 the head uses most concepts, so
        screening saves nothing and a 5-point path took 2x longer in ``bench_lf_cbm.py``.
    max_iter : int, default=2000
    tol : float, default=1e-5
    val_fraction : float, default=0.1
        Held-out share of the training set when ``X_val`` is not given.
    random_state : int, RandomState or None, default=0
        Seeds the hold-out split and the projection's initialisation and batches (None: a fresh
        seed per fit).
    device : str, verbose : bool

    Attributes
    ----------
    projection_ : ndarray (M_kept, d)
        ``W_c`` for the kept concepts.
    mean_, std_ : ndarray (M_kept,)
        Standardisation of the projected activations.
    similarities_ : dict of str -> float
        Validation cos^3 similarity of every concept that passed the activation cut-off.
    dropped_ : dict of str -> list of str
        Concepts dropped by each cut-off ("activation", "interpretability").
    n_nonzero_ : int
        Non-zero weights of the final layer.
    n_iter_ : int
        Proximal-gradient iterations of the final layer (all path points).
    path_ : list of dict
    """

    method = "lf-cbm"
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", "verbose", positive=("proj_lr", "tol"), non_negative=("lam",),
        counts=("proj_steps", "proj_batch_size", "n_lambdas", "max_iter"), clip_cutoff=[Real],
        interpretability_cutoff=[Interval(Real, -1, 1, closed="both")],
        alpha=[Interval(Real, 0, 1, closed="both")], val_fraction=[Interval(Real, 0, 1, closed="neither")])

    def __init__(self, *, concepts: ConceptBank | None = None, clip_cutoff: float = 0.25,
                 interpretability_cutoff: float = 0.45, proj_steps: int = 1000, proj_lr: float = 1e-3,
                 proj_batch_size: int = 50000, lam: float = 7e-4, alpha: float = 0.99,
                 n_lambdas: int = 1, max_iter: int = 2000, tol: float = 1e-5, val_fraction: float = 0.1,
                 random_state: int = 0, device: str = "auto", verbose: bool = False):
        self._keep_params(locals())

    def _fit(self, X: torch.Tensor, y: torch.Tensor, clip_image_embeddings: Any = None,
             X_val: Any = None, y_val: Any = None, clip_image_embeddings_val: Any = None,
             sample_weight: torch.Tensor | None = None) -> None:
        bank = self._concept_bank()
        if bank is None or bank.vectors is None:
            raise ValueError("LabelFreeCBM needs concepts=bank with CLIP text embeddings in bank.vectors.")
        E = X if clip_image_embeddings is None else as_tensor(clip_image_embeddings, X.device)
        if len(E) != len(X) or E.shape[1] != bank.vectors.shape[1]:
            raise ValueError(
                f"clip_image_embeddings must have shape ({len(X)}, {bank.vectors.shape[1]}) (one CLIP "
                f"image embedding per sample, in the concept vectors' space); got {tuple(E.shape)}. "
                "Pass clip_image_embeddings= when the backbone is not the CLIP image encoder."
            )
        (X, y, E, w), (Xv, Ev) = self._split(X, y, E, X_val, y_val, clip_image_embeddings_val, sample_weight)
        T = as_tensor(bank.vectors, X.device)
        P, Pv = kernels.concept_scores(E, T), kernels.concept_scores(Ev, T)
        top = P.topk(min(5, len(P)), dim=0).values.mean(0)
        act = (top >= self.clip_cutoff).nonzero().flatten()
        self.dropped_ = {"activation": [bank.names[j] for j in (top < self.clip_cutoff).nonzero().flatten()]}
        if len(act) == 0:
            raise ValueError(
                f"No concept passes clip_cutoff={self.clip_cutoff}: the largest mean top-5 CLIP score is "
                f"{float(top.max()):.3f}. Lower clip_cutoff or check that images and concepts share an encoder."
            )
        Wc = self._learn_projection(X, P[:, act], Xv, Pv[:, act])
        sim = kernels.cos3_similarity(Xv @ Wc.T, Pv[:, act])
        self.similarities_ = {bank.names[j]: float(s) for j, s in zip(act.tolist(), sim.tolist(), strict=True)}
        ok = sim >= self.interpretability_cutoff
        self.dropped_["interpretability"] = [bank.names[j] for j in act[~ok].tolist()]
        if not bool(ok.any()):
            raise ValueError(
                f"No concept reaches interpretability_cutoff={self.interpretability_cutoff}; the best "
                f"validation similarity is {float(sim.max()):.3f}. Lower the cut-off or add concepts."
            )
        keep = act[ok].tolist()
        self.projection_ = Wc[ok].cpu().numpy()
        Q = X @ Wc[ok].T
        if w is None:
            mean, std = Q.mean(0), Q.std(0)
        else:  # weighted, unbiased with frequency weights (what repeating each row w times gives)
            mean = (Q * w[:, None]).sum(0) / w.sum()
            std = ((((Q - mean) ** 2) * w[:, None]).sum(0) / (w.sum() - 1).clamp_min(1e-12)).sqrt()
        self.mean_, self.std_ = mean.cpu().numpy(), std.clamp_min(1e-6).cpu().numpy()
        self.base_concepts_ = bank.subset(keep)
        A = self._activations(X)
        res = fit_head(A, y, self.lam * self.alpha, self.lam * (1 - self.alpha), len(self.classes_),
                       self, desc="LF-CBM final layer", sample_weight=w)
        self.coef_, self.intercept_ = res.coef.cpu().numpy(), res.intercept.cpu().numpy()
        self.objective_, self.path_, self.n_nonzero_ = res.objective, res.path, res.nnz
        self.n_iter_ = res.n_iter

    def _split(self, X, y, E, X_val, y_val, E_val, w=None):
        """Training (X, y, E, sample weights) and validation (X, E) arrays; a seeded hold-out when no
        validation set is given."""
        if X_val is not None:
            Xv = as_tensor(X_val, X.device)
            if Xv.ndim != 2 or Xv.shape[1] != X.shape[1]:
                raise ValueError(f"X_val must have shape (n, {X.shape[1]}); got {tuple(Xv.shape)}.")
            Ev = Xv if E_val is None else as_tensor(E_val, X.device)
            if len(Ev) != len(Xv) or Ev.shape[1] != E.shape[1]:
                raise ValueError(
                    f"clip_image_embeddings_val must have shape ({len(Xv)}, {E.shape[1]}); got {tuple(Ev.shape)}."
                )
            return (X, y, E, w), (Xv, Ev)
        gen = torch.Generator().manual_seed(self._seed)
        perm = torch.randperm(len(X), generator=gen).to(X.device)
        n_val = max(1, int(round(self.val_fraction * len(X))))
        if len(X) - n_val < 2:
            raise ValueError(f"LabelFreeCBM needs more samples to hold out a validation set; got {len(X)}.")
        v, t = perm[:n_val], perm[n_val:]
        if w is not None and not bool((w[t] > 0).any()):
            raise ValueError("LabelFreeCBM held out every sample with a non-zero sample_weight for validation; "
                             "pass X_val=, y_val= or give more samples weight.")
        return (X[t], y[t], E[t], None if w is None else w[t]), (X[v], E[v])

    def _learn_projection(self, X, P, Xv, Pv) -> torch.Tensor:
        """``W_c`` (M, d) maximising mean cos^3(X W_c^T, P), best validation weights kept."""
        from tqdm.auto import tqdm

        gen = torch.Generator().manual_seed(self._seed)
        layer = torch.nn.Linear(X.shape[1], P.shape[1], bias=False, device="meta").to_empty(device=X.device)
        with torch.no_grad():  # initialised from the local generator: torch's global one is never drawn from
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen).to(X.device) / X.shape[1] ** 0.5)
        opt = torch.optim.Adam(layer.parameters(), lr=self.proj_lr)
        best_w, best, bs = layer.weight.detach().clone(), -float("inf"), min(self.proj_batch_size, len(X))
        bar = tqdm(range(self.proj_steps), desc="LF-CBM projection", disable=not self.verbose)
        for step in bar:
            idx = torch.randperm(len(X), generator=gen)[:bs].to(X.device)
            loss = -kernels.cos3_similarity(layer(X[idx]), P[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == self.proj_steps - 1:
                with torch.no_grad():
                    val = float(kernels.cos3_similarity(layer(Xv), Pv).mean())
                bar.set_postfix(val_sim=f"{val:.3f}")
                if val > best:
                    best, best_w = val, layer.weight.detach().clone()
                elif step > 0:
                    break
        self.projection_similarity_ = best
        return best_w

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        Wc = as_tensor(self.projection_, X.device)
        return (X @ Wc.T - as_tensor(self.mean_, X.device)) / as_tensor(self.std_, X.device)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"projection": self.projection_, "mean": self.mean_, "std": self.std_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.projection_ = tensors["projection"].astype(np.float32)
        self.mean_ = tensors["mean"].astype(np.float32)
        self.std_ = tensors["std"].astype(np.float32)
