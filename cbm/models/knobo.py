"""KnoBo: knowledge-grounded concept predictors and a prior-regularised head (Yang et al., 2024).

1. Grounding: one L2-regularised logistic regression per concept on L2-normalised image
   embeddings, trained on images labelled positive/negative for the concept (class-balanced),
   all M fitted at once in torch. Concepts whose held-out accuracy reaches ``threshold`` are
   kept (the ``max_concepts`` best).
2. Head: linear on the concept probabilities with ``CE + lam * mean |tanh(W) - P|``, P the
   class-concept prior.

Concept labels come from ``fit(..., concept_labels=)`` (N x M per image: 1 yes, 0 no, -1 unknown = unused) or, without them,
from the prior: images of classes with +1 are positives, with -1 negatives, 0 unused.

Grounding without shortcuts (``balance_concept``): name a known nuisance concept (an imaging
artifact) and every other predictor is trained with sample weights balanced over (its label,
the nuisance label) cells, so the nuisance is independent of the label it learns; the nuisance's
own predictor is balanced over (class, nuisance) cells, so it cannot be a class detector.
A fitted model may also carry a linear concept eraser (LEACE, set by
:class:`cbm.edits.EraseConcept`), applied to X before every predictor.

``fit(X, y, sample_weight=w)`` weighs each sample in both steps: within each balanced cell of a
concept's grounding, samples weigh in proportion to ``w`` (and the held-out accuracy is
weighted), and the head's cross-entropy is ``sum_i w_i CE_i / sum_i w_i``. The held-out split is
drawn per row, so a repeated row is not exactly the same as an integer weight.
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions

from cbm.bank import ConceptBank
from cbm.losses import prior_loss
from cbm.models._base import BaseConceptModel, as_tensor, parameter_constraints, seed_from
from cbm.models._early_stopping import EarlyStopping
from cbm.models.labo import class_prior, val_arrays

#: ``variant`` -> the settings ``threshold`` and ``grounding_l2`` take when left as None: this
#: project's, and the released KnoBo code's (every grounded concept kept, a weaker L2)
VARIANTS: dict[str, dict[str, float]] = {
    "project": {"threshold": 0.6, "grounding_l2": 1e-3},
    "released": {"threshold": 0.0, "grounding_l2": 2.5e-4},
}


class KnoBo(BaseConceptModel):
    """Knowledge bottleneck: grounded concept predictors + prior-regularised linear head.

    Parameters
    ----------
    concepts : ConceptBank
        Concept names (vectors are not needed); its prior gives P and default concept labels.
    variant : {"project", "released"}, default="project"
        Which settings ``threshold`` and ``grounding_l2`` take when left as None: this project's
        (0.6 and 1e-3) or the released KnoBo code's (0.0, i.e. every grounded concept is kept, and
        2.5e-4). A value given explicitly always wins.
    threshold : float or None, default=None
        Minimum held-out (balanced) accuracy of a concept predictor to keep the concept. None:
        0.6 (``variant="project"``) or 0.0 (``"released"``).
    max_concepts : int or None, default=None
        Keep at most this many concepts, best accuracy first.
    grounding_l2 : float, "auto" or None, default=None
        L2 strength of the concept predictors (None: 1e-3, or 2.5e-4 with ``variant="released"``). ``"auto"``: each predictor takes the strength of
        ``GROUNDING_L2_GRID`` (1e-3, 1e-4, 1e-5) that scores best on the held-out images.
    grounding_val_fraction : float, default=0.2
        Share of images held out to measure each predictor's accuracy.
    lam : float, default=1
        Weight of the prior loss.
    lr : float, default=1e-2
    max_epochs : int, default=300
    patience : int, default=30
        Early stopping on validation accuracy when ``fit(..., X_val=, y_val=)`` is given.
    balance_concept : str or None, default=None
        A nuisance concept (e.g. an imaging artifact) whose labels decorrelate the grounding of
        every other concept (see the module docstring).
    l1 : float, default=0
        Sparse head: a proximal (soft-threshold) step of ``lr * l1`` after every Adam update makes
        weights exactly zero. Adam's steps are about ``lr`` per weight, so ``l1`` is relative to them:
        a weight survives only where its normalised gradient is consistently above ``l1``; keep it
        below 1 (``l1 >= 1`` zeroes every weight).
    random_state : int, RandomState or None, default=0
        Seeds the held-out split of the grounding step (None: a fresh seed per fit).
    device : str, verbose : bool

    Attributes
    ----------
    threshold_ : float
        The selection threshold the fit used (``threshold`` resolved by ``variant``).
    n_iter_ : int
        Epochs the head trained.
    grounding_accuracy_ : ndarray of shape (M_bank,)
        Held-out accuracy of every concept predictor (NaN where a concept had no labels).
    selected_ : ndarray of int
        Bank indices of the kept concepts, the columns of ``coef_``.
    grounding_l2_ : ndarray of shape (M_base,)
        The L2 strength each kept predictor was fitted with.
    """

    method = "knobo"
    supports_vector_concepts = True
    vector_space = "unit embedding (after the eraser)"
    activation_range = (0.0, 1.0)  # sigmoid concept probabilities
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", "verbose", positive=("lr",), non_negative=("lam",),
        counts=("max_epochs", "patience"), variant=[StrOptions(set(VARIANTS))],
        threshold=[Interval(Real, 0, 1, closed="both"), None],
        max_concepts=[Interval(Integral, 1, None, closed="left"), None],
        grounding_l2=[Interval(Real, 0, None, closed="left"), StrOptions({"auto"}), None],
        grounding_val_fraction=[Interval(Real, 0, 1, closed="neither")], balance_concept=[str, None],
        l1=[Interval(Real, 0, 1, closed="left")])

    def __init__(self, *, concepts: ConceptBank | None = None, variant: str = "project",
                 threshold: float | None = None, max_concepts: int | None = None,
                 grounding_l2: float | str | None = None,
                 grounding_val_fraction: float = 0.2, lam: float = 1.0, lr: float = 1e-2,
                 max_epochs: int = 300, patience: int = 30, balance_concept: str | None = None,
                 l1: float = 0.0, random_state: int = 0, device: str = "auto", verbose: bool = False):
        self._keep_params(locals())

    def _setting(self, name: str) -> Any:
        """``threshold`` or ``grounding_l2`` as given, or else the ``variant``'s value."""
        value = getattr(self, name)
        return VARIANTS[getattr(self, "variant", "project")][name] if value is None else value

    # -- grounding ----------------------------------------------------------------------------
    def _concept_labels(self, y: torch.Tensor, labels: Any, prior: np.ndarray | None, M: int) -> torch.Tensor:
        """(N, M) float labels: 1 positive, 0 negative, -1 unused."""
        if labels is not None:
            L = as_tensor(labels, self.device_)
            if L.shape != (len(y), M):
                raise ValueError(
                    f"concept_labels must have shape (n_samples, n_concepts) = ({len(y)}, {M}); "
                    f"got {tuple(L.shape)}."
                )
            return torch.where(L > 0, 1.0, torch.where(L < 0, -1.0, 0.0))
        if prior is None:
            raise ValueError(
                "KnoBo needs concept labels: pass fit(X, y, concept_labels=...) "
                "(N x M: 1 yes, 0 no, -1 unknown), or a "
                "ConceptBank with a class-concept prior (+1/-1) so labels can be derived."
            )
        P = torch.as_tensor(prior, device=self.device_)[y]
        return torch.where(P > 0, 1.0, torch.where(P < 0, 0.0, -1.0))

    def _ground(self, Xn: torch.Tensor, L: torch.Tensor, groups: torch.Tensor | None = None,
                l2: np.ndarray | None = None, sample_weight: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """Fit all M logistic regressions at once; returns W (M, d), b (M,), held-out accuracy (M,)
        and the L2 strength of each (M,).

        ``groups`` (N, M) int: samples are weighted so every non-empty (label, group) cell of a
        concept weighs the same (label-balanced when None). With ``grounding_l2="auto"`` every
        predictor takes the strength of :data:`GROUNDING_L2_GRID` that scores best on the held-out
        images (the strongest among ties); ``l2`` (M,) fixes each predictor's strength instead.
        ``sample_weight`` (N,) weighs samples within each cell and in the held-out accuracy.
        """
        gen = torch.Generator(device="cpu").manual_seed(self._seed)
        held = (torch.rand(len(Xn), generator=gen) < self.grounding_val_fraction).to(Xn.device)
        used, pos = L >= 0, L > 0
        if sample_weight is not None:
            used = used & (sample_weight[:, None] > 0)  # a zero weight drops the sample everywhere
        weight = balanced_weights(pos, used & ~held[:, None], groups, sample_weight)
        ev = used & held[:, None]
        ev = torch.where(ev.sum(0, keepdim=True) > 0, ev, used)  # tiny data: score on train
        if l2 is not None:
            grid = (torch.as_tensor(np.asarray(l2, np.float32), device=Xn.device),)
        else:
            strength = self._setting("grounding_l2")
            grid = GROUNDING_L2_GRID if strength == "auto" else (float(strength),)
        best, start = None, None
        for strength in grid:  # strongest first, so a tie keeps the stronger L2; each starts where the last ended
            W, b = start = _logistic_regressions(Xn, pos.float(), weight, strength, start)
            acc = _balanced_accuracy((Xn @ W.T + b) > 0, pos, ev, sample_weight)
            if best is None:
                best = (W, b, acc, torch.as_tensor(strength, dtype=acc.dtype, device=acc.device).expand_as(acc))
            else:
                better = acc > best[2] + 1e-6
                best = (torch.where(better[:, None], W, best[0]), torch.where(better, b, best[1]),
                        torch.where(better, acc, best[2]), torch.where(better, strength, best[3]))
        W, b, acc, l2s = best
        labelled = (((used & pos).sum(0) > 0) & ((used & ~pos).sum(0) > 0)).cpu().numpy()
        return W, b, np.where(labelled, acc.cpu().numpy(), np.nan).astype(np.float32), l2s.cpu().numpy()

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, X: torch.Tensor, y: torch.Tensor, concept_labels: Any = None,
             X_val: Any = None, y_val: Any = None, sample_weight: torch.Tensor | None = None) -> None:
        concepts = self._concept_bank()
        if concepts is None:
            raise ValueError("KnoBo needs concepts=ConceptBank(...) naming the concepts to ground.")
        prior = class_prior(concepts, self.classes_)
        for k in ("eraser_left_", "eraser_right_", "eraser_bias_"):
            self.__dict__.pop(k, None)
        Xn = F.normalize(X, dim=1)
        L = self._concept_labels(y, concept_labels, prior, len(concepts))
        W, b, acc, l2 = self._ground(Xn, L, self._balance_groups(L, y), sample_weight=sample_weight)
        self.grounding_accuracy_ = acc
        self.threshold_ = float(self._setting("threshold"))
        order = [j for j in np.argsort(-np.nan_to_num(acc, nan=-1)) if acc[j] >= self.threshold_]
        if self.max_concepts is not None:
            order = order[: self.max_concepts]
        if not order:
            raise ValueError(
                f"No concept predictor reached threshold={self.threshold_} (best held-out accuracy "
                f"{np.nanmax(acc) if np.isfinite(acc).any() else 'n/a'}); lower threshold or give "
                "better concept labels."
            )
        self.selected_ = np.asarray(order, np.int64)
        self.grounding_W_ = W[self.selected_].cpu().numpy()
        self.grounding_b_ = b[self.selected_].cpu().numpy()
        self.grounding_l2_ = l2[self.selected_].astype(np.float32)
        bank = concepts.subset(self.selected_.tolist()).with_vectors(
            self.grounding_W_, self.grounding_b_, encoder_fingerprint=concepts.encoder_fingerprint)
        self.base_concepts_ = bank.replace(
            metadata={**bank.metadata, "grounding_accuracy": acc[self.selected_].tolist()},
            provenance=[replace(p, detail={**p.detail, "grounding_accuracy": float(acc[j])})
                        for j, p in zip(self.selected_, bank.provenance, strict=True)],
        )
        P = None if prior is None else torch.as_tensor(prior[:, self.selected_], device=self.device_)
        self._fit_head(self._activations(X), y, P, val_arrays(self, X_val, y_val), sample_weight=sample_weight)

    def _balance_groups(self, L: torch.Tensor, y: torch.Tensor, nuisance: torch.Tensor | None = None,
                        j: int | None = None) -> torch.Tensor | None:
        """(N, M) grounding groups: the nuisance label for every concept, the class for the nuisance
        concept itself (column ``j``; by default ``balance_concept``'s labels and column)."""
        if nuisance is None:
            if self.balance_concept is None:
                return None
            j = self.concepts.index(self.balance_concept)
            nuisance = L[:, j] > 0
        groups = nuisance.long()[:, None].expand(-1, L.shape[1]).clone()
        if j is not None:
            groups[:, j] = y
        return groups

    def _fit_head(self, A: torch.Tensor, y: torch.Tensor, P: torch.Tensor | None, val,
                  Av: torch.Tensor | None = None, sample_weight: Any = None, val_weight: Any = None) -> None:
        from tqdm.auto import tqdm

        K, M = len(self.classes_), A.shape[1]
        W = torch.zeros(K, M, device=A.device, requires_grad=True)
        b = torch.zeros(K, device=A.device, requires_grad=True)
        opt = torch.optim.Adam([W, b], lr=self.lr)
        if Av is None and val is not None:
            Av = self._activations(val[0])
        w, wv = (None if v is None else torch.as_tensor(np.asarray(v, np.float32), device=A.device)
                 for v in (sample_weight, val_weight))
        stop = EarlyStopping(self.patience)
        self.n_iter_ = 0
        for _ in tqdm(range(self.max_epochs), desc="KnoBo head", disable=not self.verbose):
            self.n_iter_ += 1
            loss = (F.cross_entropy(A @ W.T + b, y) if w is None
                    else (F.cross_entropy(A @ W.T + b, y, reduction="none") * w).sum() / w.sum())
            if P is not None and self.lam:
                loss = loss + self.lam * prior_loss(W, P)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if self.l1:
                with torch.no_grad():  # proximal step of the L1 penalty: exact zeros
                    W.copy_(torch.sign(W) * (W.abs() - self.lr * self.l1).clamp(min=0))
            if Av is not None:
                with torch.no_grad():
                    z = Av @ W.T + b
                    hit, ce = (z.argmax(1) == val[1]).float(), F.cross_entropy(z, val[1], reduction="none")
                    acc, vloss = ((hit.mean().item(), ce.mean().item()) if wv is None
                                  else ((hit * wv).sum().item() / wv.sum().item(), (ce * wv).sum().item() / wv.sum().item()))
                if stop.update(acc, vloss, lambda: (W.detach().clone(), b.detach().clone())):
                    break
        best = stop.best_state
        W_f, b_f = best if best is not None else (W.detach(), b.detach())
        self.coef_, self.intercept_ = W_f.cpu().numpy(), b_f.cpu().numpy()

    # -- activations --------------------------------------------------------------------------
    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        return self._score_vectors(X, as_tensor(self.grounding_W_, X.device), as_tensor(self.grounding_b_, X.device))

    def _to_vector_space(self, X: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.erase(X), dim=1)

    def _score_vectors(self, X: torch.Tensor, vectors: torch.Tensor, intercepts: torch.Tensor) -> torch.Tensor:
        """Concept probability ``sigmoid(<x' / |x'|, v> + b)``, x' = x after the eraser (if any)."""
        return torch.sigmoid(self._to_vector_space(X) @ vectors.T + intercepts)

    def erase(self, X: Any) -> Any:
        """X with the fitted concept eraser applied (unchanged without one); tensor or array in, same out."""
        if getattr(self, "eraser_left_", None) is None:
            return X
        Xt = as_tensor(X, X.device if isinstance(X, torch.Tensor) else "cpu")
        L, R, mu = (as_tensor(a, Xt.device) for a in (self.eraser_left_, self.eraser_right_, self.eraser_bias_))
        out = Xt - ((Xt - mu) @ R.T) @ L.T
        return out if isinstance(X, torch.Tensor) else out.numpy()

    def set_eraser(self, left: np.ndarray | None, right: np.ndarray | None = None,
                   bias: np.ndarray | None = None) -> None:
        """Install a LEACE eraser ``x - L R (x - bias)`` (L: d x r, R: r x d); None removes it."""
        if left is None:
            for k in ("eraser_left_", "eraser_right_", "eraser_bias_"):
                self.__dict__.pop(k, None)
            return
        d = self.n_features_in_
        left, right, bias = (np.asarray(a, np.float32) for a in (left, right, bias))
        if left.shape[0] != d or right.shape != (left.shape[1], d) or bias.shape != (d,):
            raise ValueError(f"eraser shapes must be L (d, r), R (r, d), bias (d,) with d={d}; got "
                             f"{left.shape}, {right.shape}, {bias.shape}.")
        self.eraser_left_, self.eraser_right_, self.eraser_bias_ = left, right, bias

    def refit(self, X: Any, y: Any, *, concept_labels: Any = None, nuisance: Any = None,
              X_val: Any = None, y_val: Any = None, sample_weight: Any = None,
              val_weight: Any = None) -> KnoBo:
        """Refit on the same training data after an edit: the head on the current concepts and,
        given ``concept_labels`` (N x M_base, columns in ``base_concepts_`` order), the concept
        predictors too, each with the L2 strength it was fitted with (weighted to be independent of
        ``nuisance`` (N,) flags when given). The
        eraser, if any, is applied first. ``sample_weight`` (N,) and ``val_weight`` weigh the
        head's training loss and its early-stopping score."""
        self._check_fitted()
        Xt = self._check_X(X)
        y_idx = _class_indices(self, y)
        self._seed = seed_from(getattr(self, "random_state", 0))  # a loaded model re-grounds as fit did
        if concept_labels is not None:
            names = self.base_concepts_.names
            L = as_tensor(concept_labels, self.device_)
            if L.shape != (len(y_idx), len(names)):
                raise ValueError(f"concept_labels must have one column per grounded concept (base_concepts_, "
                                 f"{len(names)}) and one row per sample; got {tuple(L.shape)}.")
            L = torch.where(L > 0, 1.0, torch.where(L < 0, -1.0, 0.0))
            jb = names.index(self.balance_concept) if self.balance_concept in names else None
            if nuisance is None and jb is not None:
                nuisance = (L[:, jb] > 0).cpu().numpy()
            groups = None if nuisance is None else self._balance_groups(
                L, y_idx, torch.as_tensor(np.asarray(nuisance) > 0, device=Xt.device), jb)
            W, b, _, l2 = self._ground(F.normalize(self.erase(Xt), dim=1), L, groups, self.grounding_l2_)
            self.grounding_W_, self.grounding_b_ = W.cpu().numpy(), b.cpu().numpy()
            self.grounding_l2_ = l2.astype(np.float32)
            self.base_concepts_ = self.base_concepts_.with_vectors(
                self.grounding_W_, self.grounding_b_, encoder_fingerprint=self.base_concepts_.encoder_fingerprint)
            if not len(self._added_vectors):
                self.concepts_ = self.base_concepts_.subset(self.keep_.tolist())
        A = as_tensor(self.transform(Xt), self.device_)
        val = val_arrays(self, X_val, y_val)
        Av = None if val is None else as_tensor(self.transform(val[0]), self.device_)
        prior = class_prior(self.concepts_, self.classes_)
        P = None if prior is None else torch.as_tensor(prior, device=self.device_)
        self._fit_head(A, y_idx, P, val, Av, sample_weight, val_weight)
        return self

    def _extra_state(self) -> dict[str, np.ndarray]:
        out = {"grounding_W": self.grounding_W_, "grounding_b": self.grounding_b_,
               "selected": self.selected_, "grounding_accuracy": self.grounding_accuracy_,
               "grounding_l2": self.grounding_l2_}
        if getattr(self, "eraser_left_", None) is not None:
            out.update(eraser_left=self.eraser_left_, eraser_right=self.eraser_right_,
                       eraser_bias=self.eraser_bias_)
        return out

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.grounding_W_ = tensors["grounding_W"].astype(np.float32)
        self.grounding_b_ = tensors["grounding_b"].astype(np.float32)
        self.selected_ = tensors["selected"].astype(np.int64)
        self.grounding_accuracy_ = tensors["grounding_accuracy"].astype(np.float32)
        if "grounding_l2" in tensors:
            self.grounding_l2_ = tensors["grounding_l2"].astype(np.float32)
        else:  # saved before the attribute existed: one strength for all
            strength = self._setting("grounding_l2")
            strength = GROUNDING_L2_GRID[0] if strength == "auto" else float(strength)
            self.grounding_l2_ = np.full(len(self.selected_), strength, np.float32)
        if "eraser_left" in tensors:
            self.set_eraser(tensors["eraser_left"], tensors["eraser_right"], tensors["eraser_bias"])


GROUNDING_L2_GRID = (1e-3, 1e-4, 1e-5)  # grounding_l2="auto": strongest first


def _logistic_regressions(Xn: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, l2: float | torch.Tensor,
                          start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """M weighted, L2-regularised logistic regressions on the same X at once (L-BFGS, from ``start``);
    ``l2`` is one strength or one per regression (M,)."""
    l2 = l2[:, None] if torch.is_tensor(l2) else l2
    if start is None:
        start = (torch.zeros(target.shape[1], Xn.shape[1], device=Xn.device),
                 torch.zeros(target.shape[1], device=Xn.device))
    W, b = (v.clone().requires_grad_(True) for v in start)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        bce = F.binary_cross_entropy_with_logits(Xn @ W.T + b, target, reduction="none")
        loss = (bce * weight).sum() + (l2 * W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def _balanced_accuracy(pred: torch.Tensor, pos: torch.Tensor, ev: torch.Tensor,
                       sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """(M,) mean of true-positive and true-negative rates of ``pred`` over the ``ev`` entries
    (each sample counted with its weight when given)."""
    correct = (pred == pos) & ev
    if sample_weight is None:
        tpr = (correct & pos).sum(0) / (ev & pos).sum(0).clamp(min=1)
        tnr = (correct & ~pos).sum(0) / (ev & ~pos).sum(0).clamp(min=1)
        return (tpr + tnr) / 2
    w = sample_weight[:, None]
    tpr = ((correct & pos) * w).sum(0) / torch.where((ev & pos).any(0), ((ev & pos) * w).sum(0), 1.0)
    tnr = ((correct & ~pos) * w).sum(0) / torch.where((ev & ~pos).any(0), ((ev & ~pos) * w).sum(0), 1.0)
    return (tpr + tnr) / 2


def _class_indices(model: KnoBo, y: Any) -> torch.Tensor:
    y = np.asarray(y)
    unknown = sorted(set(y.tolist()) - set(model.classes_.tolist()))
    if unknown:
        raise ValueError(f"y has labels the model was not fitted on: {unknown[:5]}.")
    return torch.as_tensor(np.searchsorted(model.classes_, y), device=model.device_)


def balanced_weights(pos: torch.Tensor, train: torch.Tensor, groups: torch.Tensor | None,
                     sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) sample weights summing to 1 per concept: every non-empty (label, group) cell weighs
    the same, so the group is independent of the label under the weights; within a cell, samples
    weigh in proportion to ``sample_weight`` (N,) (equally without it)."""
    cell = pos.long() if groups is None else pos.long() + 2 * groups.long()
    n_cells = int(cell.max().item()) + 1 if cell.numel() else 1
    onehot = F.one_hot(cell, n_cells).float() * train[..., None]      # (N, M, C)
    if sample_weight is not None:
        onehot = onehot * sample_weight[:, None, None]
    counts = onehot.sum(0)                                              # (M, C)
    per = torch.where(counts > 0, 1.0 / counts.clamp(min=1), 0.0)
    per = per / (counts > 0).sum(1, keepdim=True).clamp(min=1)
    return (onehot * per[None]).sum(-1)
