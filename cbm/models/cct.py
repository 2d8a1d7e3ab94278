"""Concept-Centric Transformer (Hong, Wang and Nguyen, WACV 2024) and Concept Transformer (Rigotti et
al., ICLR 2022) on cached patch tokens.

Input is an image's patch tokens ``X`` (N, T, d) (``EmbeddingStore.get_or_compute(..., kind="tokens")``;
a pooled (N, d) embedding is read as one token). Per image:

1. tokens are normalised and projected to ``dim``: ``h`` (T, dim);
2. ``variant="cct"``: slot attention (Locatello et al., 2020) from one learned initial slot per
   global concept, ``n_iters`` rounds of "slots compete for tokens" with a GRU update, gives one
   slot per concept per image; ``spatial_concepts`` (patch-level, as the released spatial stream)
   and every concept of ``variant="ct"`` are learned embeddings, the same for every image;
3. cross-attention from the tokens (queries) to the slots (keys, values), ``n_heads`` heads, one
   readout per stream (global, spatial) as released: per-token concept attention ``attn`` (T, M),
   softmax over the stream's concepts (the spatial stream of "cct" has a learned background key, so
   a token may attend to no spatial concept);
4. class logits, summed over the streams: ``proj(mean_t(attn @ v))`` =
   ``sum_m A_m * (v_m W_proj^T) + b`` with the image-level concept scores ``A = mean_t attn`` (M,):
   each concept's value says what it adds to each class.

Training minimises, as released (``ctc/loss.py``), with the costs taken per stream::

    CE + expl_lambda * (explanation_cost(A, concept_labels)
                        + spatial_explanation_cost(attn, spatial_concept_labels))
       + sparsity_lambda * sparsity_cost(spatial_attn=attn)

except that by default (``spatial_pooling="max"``) the image-level labels of spatial concepts are
multiple-instance targets for each concept's peak attention over the patches (:func:`presence_cost`)
instead of the released mean-attention cost (``"mean"``: the spatial stream's image-level target
gets a background column, 1 where none of its concepts is present, and asks every patch of a tagged
image to attend to the tag, so the map saturates around it). Spatial concepts localise with
image-level labels alone: on the demo the tag concept's attention peaks on the tag's patches, also
in a corner never seen in training, while a global (slot) concept can meet the same labels by
spreading over the image (``cbm.demo.cct_tag``).

``transform`` gives ``A`` (N, M); :meth:`ConceptCentricTransformer.concept_maps` gives the spatial
maps (N, M, h, w). The linear head of :class:`~cbm.models._base.BaseConceptModel` is
``coef_ = mean over training images of v_m W_proj^T`` (exact for the CT variant with one head); the
per-image remainder is the hybrid residual, so ``decision_function`` is the network's exact output,
explanations add up, and weight edits act on top of it. Removing a concept masks its slot.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import StrOptions

from cbm.bank import ConceptBank
from cbm.exceptions import NotFittedError
from cbm.models._base import (
    BaseConceptModel,
    check_sample_weight,
    parameter_constraints,
    resolve_device,
    seed_from,
    weighted_mean,
)
from cbm.models._cct_network import (
    CCTNet,
    ConceptReadout,
    ConceptSlotAttention,
    entropy,
    explanation_cost,
    presence_cost,
    sparsity_cost,
    spatial_explanation_cost,
)
from cbm.models._early_stopping import EarlyStopping

__all__ = ["CCTNet", "ConceptCentricTransformer", "ConceptReadout", "ConceptSlotAttention", "entropy",
           "explanation_cost", "presence_cost", "sparsity_cost", "spatial_explanation_cost"]


class ConceptCentricTransformer(BaseConceptModel):
    """Concept-Centric Transformer on patch tokens: concept slots, spatial concept attention.

    Parameters
    ----------
    concepts : ConceptBank
        The M concepts (names; vectors are not used). One slot per concept.
    variant : {"cct", "ct"}, default="cct"
        "cct": slots from slot attention over the image's tokens (Concept-Centric Transformer);
        "ct": learned concept embeddings shared by all images (Concept Transformer).
    spatial_concepts : list of str, optional
        Concepts that are patch-level (spatial): as in the released code their keys and values are
        learned embeddings shared by all images, so a token attends to them by its own content and
        their maps localise; the other (global) concepts get per-image slots. With "ct" every
        concept is spatial.
    spatial_pooling : {"max", "mean"}, default="max"
        How image-level labels of spatial concepts train their maps (``variant="cct"``; "ct" keeps
        the released cost). "max": :func:`presence_cost`, multiple-instance learning: a concept is
        present iff some patch attends to it, so only the patches that hold it need to. "mean": the
        released image-level cost on the stream's mean attention with a background column: a tagged
        image asks every patch to attend to the tag, so the map saturates on every patch that sees
        it and its peak is often beside the tag.
    dim : int, default=128
        Width of the projected tokens and slots.
    n_heads : int, default=1
        Cross-attention heads (``dim`` must divide by it).
    n_iters : int, default=3
        Slot attention rounds (``variant="cct"``).
    expl_lambda : float, default=1.0
        Weight of the explanation costs (used when concept labels are given to ``fit``).
    sparsity_lambda : float, default=0.0
        Weight of the entropy sparsity cost on the per-token concept attention.
    lr, weight_decay : float, default=1e-3, 1e-4
        AdamW settings.
    max_epochs, batch_size, patience : int, default=30, 64, 5
        Training length; early stopping on validation accuracy when ``X_val``/``y_val`` are given.
    random_state : int, default=0
        Seeds initialisation and batch order (the global torch RNG is left as it was).
    device : str, default="auto"
    verbose : bool, default=False

    Attributes
    ----------
    net_ : CCTNet
    token_grid_ : tuple of int
        (h, w) of the training tokens (``concept_maps`` reshapes T to it).
    history_ : list of dict
        Per-epoch training loss parts and validation accuracy.
    """

    method = "cct"
    hybrid = True
    activation_range = (0.0, 1.0)  # attention (softmax over concepts) averaged over tokens
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", positive=("lr",),
        non_negative=("expl_lambda", "sparsity_lambda", "weight_decay"),
        counts=("dim", "n_heads", "n_iters", "max_epochs", "batch_size", "patience"),
        variant=[StrOptions({"cct", "ct"})], spatial_concepts=[list, None],
        spatial_pooling=[StrOptions({"mean", "max"})], verbose=["boolean"])

    def __init__(self, *, concepts: ConceptBank | None = None, variant: str = "cct",
                 spatial_concepts: list[str] | None = None, spatial_pooling: str = "max", dim: int = 128,
                 n_heads: int = 1, n_iters: int = 3, expl_lambda: float = 1.0,
                 sparsity_lambda: float = 0.0, lr: float = 1e-3, weight_decay: float = 1e-4,
                 max_epochs: int = 30, batch_size: int = 64, patience: int = 5, random_state: int = 0,
                 device: str = "auto", verbose: bool = False) -> None:
        self._keep_params(locals())

    def _spatial_mask(self) -> list[bool]:
        names = list(self.concepts.names)
        wanted = list(self.spatial_concepts or [])
        unknown = [c for c in wanted if c not in names]
        if unknown:
            from cbm.exceptions import unknown_name_message

            raise ValueError(unknown_name_message("spatial concept", unknown[0], names))
        return [n in wanted for n in names]

    # -- input ------------------------------------------------------------------------------
    @staticmethod
    def _as_tokens(X: Any, what: str = "X") -> np.ndarray:
        from sklearn.utils.validation import check_array  # scikit-learn's messages for bad input

        arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
        arr = check_array(arr, allow_nd=True, dtype=None, ensure_all_finite=True, input_name=what)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"ConceptCentricTransformer: {what} must be patch tokens (n_samples, n_tokens, dim) "
                             f"or embeddings (n_samples, dim); got shape {arr.shape}.")
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
            raise ValueError(f"{what} must hold finite floats (it contains NaN or infinite values, or is not "
                             "float); check the token cache.")
        return arr if arr.flags.writeable and arr.flags.c_contiguous else np.array(arr)

    def _check_X(self, X: Any) -> torch.Tensor:
        arr = self._as_tokens(X)
        if arr.shape[2] != self.n_features_in_:
            raise ValueError(f"X has {arr.shape[2]} features, but ConceptCentricTransformer is expecting "
                             f"{self.n_features_in_} features as input ({self.n_features_in_}-d tokens); got shape "
                             f"{arr.shape}. Use tokens from the same encoder.")
        return torch.from_numpy(arr)  # stays on CPU (float16 caches too); batches move to the device

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None, **fit_params: Any) -> ConceptCentricTransformer:
        """Fit on patch tokens ``X`` (N, T, d) and labels ``y``; ``concept_labels`` (N, M),
        ``spatial_concept_labels`` (N, T, M) (NaN = unknown) and ``X_val``/``y_val`` optional.
        ``sample_weight`` (N,) weighs each sample's cross-entropy (the explanation and sparsity
        costs stay unweighted)."""
        from sklearn.utils.multiclass import check_classification_targets

        self._validate_params()
        self._check_fit_params(fit_params)
        Xn = self._as_tokens(X)
        if y is None:
            raise ValueError("ConceptCentricTransformer requires y to be passed, but the target y is None.")
        y_np = np.asarray(y)
        if y_np.ndim == 2 and y_np.shape[1] > 1:
            raise ValueError(f"ConceptCentricTransformer predicts one class per sample, but y has shape "
                             f"{y_np.shape} (multi-label or multi-output targets). Pass one label per sample.")
        if y_np.ndim != 1 or len(y_np) != len(Xn):
            raise ValueError(f"X has {len(Xn)} samples but y has shape {y_np.shape}; pass one label per sample.")
        check_classification_targets(y_np)
        if self._concept_bank() is None:
            raise ValueError("ConceptCentricTransformer needs concepts=ConceptBank(names): one slot per concept.")
        self.classes_, y_idx = np.unique(y_np, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"ConceptCentricTransformer needs at least 2 classes; got {list(self.classes_)}.")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be divisible by n_heads={self.n_heads}.")
        self.n_features_in_ = Xn.shape[2]
        self.token_grid_ = _grid(Xn.shape[1])
        self.device_ = resolve_device(self.device)
        if sample_weight is not None:
            fit_params["sample_weight"] = torch.as_tensor(check_sample_weight(self, sample_weight, Xn, y_idx))
        self._fit(torch.from_numpy(Xn), torch.as_tensor(y_idx), **fit_params)
        return self

    def _fit(self, X: torch.Tensor, y: torch.Tensor, X_val: Any = None, y_val: Any = None,
             concept_labels: Any = None, spatial_concept_labels: Any = None,
             sample_weight: torch.Tensor | None = None) -> None:
        M, K = len(self.concepts), len(self.classes_)
        C = self._targets(concept_labels, (len(X), M), "concept_labels")
        S = self._targets(spatial_concept_labels, (len(X), X.shape[1], M), "spatial_concept_labels")
        val = None
        if X_val is not None:
            Xv = torch.from_numpy(self._as_tokens(X_val, "X_val"))
            yv = np.asarray(y_val)
            if Xv.shape[2] != X.shape[2] or len(yv) != len(Xv):
                raise ValueError(f"X_val {tuple(Xv.shape)} / y_val {yv.shape} do not match X {tuple(X.shape)}.")
            known = np.isin(yv, self.classes_)
            val = (Xv[known], torch.as_tensor(np.searchsorted(self.classes_, yv[known])))
        dev = self.device_
        seed = seed_from(self.random_state)
        devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = CCTNet(X.shape[2], self.dim, M, K, self.n_heads, self.n_iters, self.variant,
                         self._spatial_mask()).to(dev)
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            stopper = EarlyStopping(self.patience)
            pooling = self.spatial_pooling if self.variant == "cct" else "mean"
            self.history_ = []
            for epoch in range(self.max_epochs):
                net.train()
                parts = np.zeros(4)
                for idx in torch.randperm(len(X), generator=gen).split(self.batch_size):
                    out = net(X[idx].to(dev, torch.float32))
                    ce = weighted_mean(F.cross_entropy(out["logits"], y[idx].to(dev), reduction="none"),
                                       None if sample_weight is None else sample_weight.to(dev), idx.to(dev))
                    expl = net.explanation_costs(out, None if C is None else C[idx].to(dev),
                                                 None if S is None else S[idx].to(dev), pooling)
                    sparse = sparsity_cost(spatial_attn=out["attn"])
                    loss = ce + self.expl_lambda * expl + self.sparsity_lambda * sparse
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    parts += len(idx) * np.array([_item(v) for v in (loss, ce, expl, sparse)])
                rec = dict(zip(("loss", "ce", "explanation", "sparsity"), (parts / len(X)).tolist(),
                               strict=True), epoch=epoch)
                if val is not None and len(val[1]):
                    net.eval()
                    with torch.no_grad():
                        logits = torch.cat([net(val[0][i:i + 512].to(dev, torch.float32))["logits"].cpu()
                                            for i in range(0, len(val[0]), 512)])
                    rec["val_accuracy"] = float((logits.argmax(1) == val[1]).float().mean())
                    rec["val_loss"] = float(F.cross_entropy(logits, val[1]))
                self.history_.append(rec)
                if self.verbose:
                    print(f"cct epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items()
                                                                if k != "epoch"))
                if "val_accuracy" in rec and stopper.update(
                        rec["val_accuracy"], rec["val_loss"],
                        lambda: {k: v.detach().clone() for k, v in net.state_dict().items()}):
                    break
            if stopper.best_state is not None:
                net.load_state_dict(stopper.best_state)
        self.net_ = net.eval()
        self.n_iter_ = len(self.history_)
        self.base_concepts_ = self.concepts
        self._set_head(X)
        self.keep_ = np.arange(M)
        self.concepts_ = self.base_concepts_
        self._added_vectors = np.zeros((0, self.n_features_in_), np.float32)
        self._added_intercepts = np.zeros(0, np.float32)

    @staticmethod
    def _targets(labels: Any, shape: tuple[int, ...], what: str) -> torch.Tensor | None:
        if labels is None:
            return None
        arr = np.asarray(labels, dtype=np.float32)
        if arr.shape != shape:
            raise ValueError(f"{what} must have shape {shape} (samples, [tokens,] concepts); got {arr.shape}.")
        return torch.from_numpy(arr)

    @torch.no_grad()
    def _set_head(self, X: torch.Tensor) -> None:
        """coef_ = the concept values' class logits averaged over (up to 2048) training images."""
        out = self._forward(X[:2048], mask=None, parts=("value_logits",))
        self.base_coef_ = out["value_logits"].mean(0).T.numpy().astype(np.float32)   # (K, M)
        bias = sum(r.proj.bias for r in self.net_.modules() if isinstance(r, ConceptReadout))
        self.base_intercept_ = bias.detach().cpu().numpy().astype(np.float32)
        self.coef_, self.intercept_ = self.base_coef_.copy(), self.base_intercept_.copy()

    # -- forward passes ---------------------------------------------------------------------
    def _mask(self) -> torch.Tensor | None:
        M = len(self.base_concepts_)
        if len(self.keep_) == M:
            return None
        mask = torch.zeros(M, dtype=torch.bool)
        mask[torch.as_tensor(self.keep_, dtype=torch.long)] = True
        return mask

    @torch.no_grad()
    def _forward(self, X: torch.Tensor, mask: Any = "current",
                 parts: tuple[str, ...] = ("logits", "scores", "attn")) -> dict[str, torch.Tensor]:
        if not hasattr(self, "net_"):
            raise NotFittedError("This ConceptCentricTransformer is not fitted yet; call fit(X, y) first.")
        if isinstance(mask, str):
            mask = self._mask()
        dev = self.device_
        m = None if mask is None else mask.to(dev)
        outs: dict[str, list[torch.Tensor]] = {p: [] for p in parts}
        for i in range(0, len(X), 512):
            out = self.net_(X[i:i + 512].to(dev, torch.float32), m)
            for p in parts:
                outs[p].append(out[p].float().cpu())
        return {p: torch.cat(v) if v else torch.zeros(0) for p, v in outs.items()}

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        return self._forward(X, parts=("scores",))["scores"]

    def _residual(self, X: torch.Tensor) -> torch.Tensor:
        """Exact logits minus what the (unedited) concept head explains: per-image value deviations."""
        out = self._forward(X, parts=("logits", "scores"))
        keep = torch.as_tensor(self.keep_, dtype=torch.long)
        A = out["scores"][:, keep]
        head = A @ torch.from_numpy(self.base_coef_[:, self.keep_]).T + torch.from_numpy(self.base_intercept_)
        return out["logits"] - head

    def transform(self, X: Any) -> np.ndarray:
        """Image-level concept scores (N, M): each concept's attention averaged over the tokens."""
        self._check_fitted()
        return self._activations(self._check_X(X))[:, torch.as_tensor(self.keep_)].numpy()

    def residual_logits(self, X: Any) -> np.ndarray:
        """Per-image logits beyond the concept head ``A @ base_coef_.T``, shape (N, K)."""
        self._check_fitted()
        return self._residual(self._check_X(X)).numpy()

    def logits(self, X: Any) -> np.ndarray:
        """Class scores (N, K): the network's logits (plus any weight edits)."""
        self._check_fitted()
        Xt = self._check_X(X)
        out = self._forward(Xt, parts=("logits", "scores"))
        A = out["scores"][:, torch.as_tensor(self.keep_)].numpy()
        delta = A @ (self.coef_ - self.base_coef_[:, self.keep_]).T + (self.intercept_ - self.base_intercept_)
        return out["logits"].numpy() + delta

    def concept_maps(self, X: Any) -> np.ndarray:
        """Spatial concept attention (N, M, h, w): each token's attention to each concept.

        Every token's attention sums to 1 over the model's concepts; ``h, w`` is ``token_grid_``.
        """
        self._check_fitted()
        Xt = self._check_X(X)
        h, w = self.token_grid_
        if Xt.shape[1] != h * w:
            h, w = _grid(Xt.shape[1])
        attn = self._forward(Xt, parts=("attn",))["attn"][:, :, torch.as_tensor(self.keep_)]
        return attn.transpose(1, 2).reshape(len(Xt), -1, h, w).numpy()

    def concept_contributions(self, X: Any) -> np.ndarray:
        """Exact per-image contributions (N, M, K) of each concept to each class logit."""
        self._check_fitted()
        out = self._forward(self._check_X(X), parts=("contrib",))
        return out["contrib"][:, torch.as_tensor(self.keep_)].numpy()

    # -- persistence ------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, np.ndarray]:
        out = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        out.update(base_coef=self.base_coef_, base_intercept=self.base_intercept_,
                   token_grid=np.asarray(self.token_grid_, np.int64))
        return out

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        M, K = len(self.base_concepts_), len(self.classes_)
        net = CCTNet(self.n_features_in_, self.dim, M, K, self.n_heads, self.n_iters, self.variant,
                     self._spatial_mask())
        net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in tensors.items()
                             if k.startswith("net.")})
        self.net_ = net.to(self.device_).eval()
        self.base_coef_ = tensors["base_coef"].astype(np.float32)
        self.base_intercept_ = tensors["base_intercept"].astype(np.float32)
        self.token_grid_ = tuple(int(v) for v in tensors["token_grid"])


def _item(v: Any) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _grid(n_tokens: int) -> tuple[int, int]:
    side = math.isqrt(n_tokens)
    return (side, side) if side * side == n_tokens else (1, n_tokens)
