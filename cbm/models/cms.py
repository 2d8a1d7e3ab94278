"""Concept Matrix Search: training-free classification by concept profiles (Semenov et al., 2024).

With image-concept similarities ``V[n, k] = cos(I(x_n), T(c_k))`` and class-concept
similarities ``T[y, k] = cos(T(class_y), T(c_k))``, each row normalised, CMS predicts:

* ``variant="similarity"``: ``argmax_y cos(V_n, T_y)``. This is a linear head after
  normalising V's rows, so ``transform`` returns ``V_n / |V_n|`` and ``coef_ = T_y / |T_y|``.
* ``variant="max"`` (max-score): take the concept with the largest ``V[n, k]`` and predict the
  class with the largest ``T[y, k]`` for it; ``transform`` returns the one-hot top concept
  and ``coef_`` is T, which is again a linear head.

Row normalisation (``normalize=``): the released code divides each row by its sum, which flips
the sign of a row whose similarities sum to a negative number (and explodes near zero).
The default ``"l1"`` divides by the sum of absolute values instead: the same as the released
rule whenever a row is non-negative (CLIP similarities usually are), never a sign flip;
``"sum"`` is the released behaviour.

Nothing is learned from the labels: ``fit`` only records classes and the class texts'
embeddings (so ``sample_weight`` is accepted, validated and changes nothing), given as the constructor parameter ``class_embeddings`` or the fit parameter of
the same name. Their rows are matched to the labels by class name: a mapping
``{class name: vector}``; or an array with one row per ``concepts.classes`` (the bank's class
order, as ``load_training_data`` and the synthetic world give it), matched to labels that are
those names or integer indices into them; or, when the bank names no classes, an array
(K, d) in the order of the sorted labels (``classes_``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from cbm.bank import ConceptBank
from cbm.losses import concept_scores
from cbm.models._base import BaseConceptModel, as_tensor, parameter_constraints, require_vectors

NORMALIZATIONS = ("l1", "sum")


def _row_normalise(M: torch.Tensor, how: str = "l1", eps: float = 1e-8) -> torch.Tensor:
    """Rows divided by their sum of absolute values ("l1") or by their signed sum ("sum", as released)."""
    total = M.abs().sum(dim=1, keepdim=True) if how == "l1" else M.sum(dim=1, keepdim=True)
    return M / (total + eps)


def align_class_embeddings(emb: Any, bank: ConceptBank, classes: np.ndarray) -> np.ndarray:
    """Class text embeddings with one row per entry of ``classes``, matched by name (see the module doc)."""
    names = [str(c) for c in classes]
    if isinstance(emb, Mapping):
        by_name = {str(k): v for k, v in emb.items()}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"class_embeddings has no vector for the classes {missing[:10]}; it names "
                             f"{sorted(by_name)[:10]}. Give one vector per class label.")
        return np.stack([np.asarray(by_name[n], np.float32) for n in names])
    E = np.asarray(emb.detach().cpu() if isinstance(emb, torch.Tensor) else emb, np.float32)
    if E.ndim != 2:
        raise ValueError(f"class_embeddings must be (n_classes, dim) or a {{class: vector}} mapping; got shape {E.shape}.")
    if bank.classes is not None and len(E) == len(bank.classes):
        if all(n in bank.classes for n in names):
            return E[[bank.classes.index(n) for n in names]]
        labels = np.asarray(classes)
        if np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0 and labels.max() < len(E):
            return E[labels.astype(int)]
        raise ValueError(
            f"class_embeddings has one row per class of the concept bank ({bank.classes[:10]}), but y has "
            f"labels {[n for n in names if n not in bank.classes][:10]} that are none of them. Fit with y "
            "given as those class names, or pass class_embeddings as a {class: vector} mapping."
        )
    if len(E) != len(names):
        raise ValueError(
            f"class_embeddings must have shape (n_classes, dim) = ({len(names)}, d), one row per class in "
            f"the order of the sorted labels {names[:10]}; got {E.shape}."
        )
    return E


class ConceptMatrixSearch(BaseConceptModel):
    """Training-free concept matrix search (CMS).

    Parameters
    ----------
    concepts : ConceptBank
        Concepts with text-embedding ``vectors``.
    class_embeddings : array-like of shape (K, d), optional
        Text embeddings of the class names/descriptions; may instead be passed to ``fit``.
    variant : {"similarity", "max"}, default="similarity"
    normalize : {"l1", "sum"}, default="l1"
        Row normalisation of both similarity matrices ("sum" = the released code's; see the module doc).
    device : str
    """

    method = "cms"
    _parameter_constraints: dict = parameter_constraints(
        "concepts", "random_state", "device", class_embeddings=["array-like", None],
        variant=[StrOptions({"similarity", "max"})], normalize=[StrOptions(set(NORMALIZATIONS))])

    def __init__(self, *, concepts: ConceptBank | None = None, class_embeddings: Any = None,
                 variant: str = "similarity", normalize: str = "l1", random_state: int = 0,
                 device: str = "auto"):
        self._keep_params(locals())

    def _fit(self, X: torch.Tensor, y: torch.Tensor, class_embeddings: Any = None,
             sample_weight: torch.Tensor | None = None) -> None:
        bank = require_vectors(self)
        emb = class_embeddings if class_embeddings is not None else self.class_embeddings
        if emb is None:
            raise ValueError(
                "ConceptMatrixSearch needs class text embeddings: pass class_embeddings=(K, d) to the "
                "constructor or to fit (embed texts like 'a photo of a {class}')."
            )
        C = as_tensor(align_class_embeddings(emb, bank, self.classes_), self.device_)
        if C.shape[1] != self.n_features_in_:
            raise ValueError(
                f"class_embeddings are {C.shape[1]}-d but X is {self.n_features_in_}-d; embed the class "
                "texts with the encoder of the images."
            )
        self._vectors = as_tensor(bank.vectors, self.device_)
        T = _row_normalise(concept_scores(C, self._vectors), self.normalize)
        self.class_concept_matrix_ = T.cpu().numpy()
        coef = T if self.variant == "max" else torch.nn.functional.normalize(T, dim=1)
        self.coef_ = coef.cpu().numpy()
        self.intercept_ = np.zeros(len(self.classes_), np.float32)
        self.base_concepts_ = bank

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        if getattr(self, "_vectors", None) is None or self._vectors.device != X.device:
            self._vectors = as_tensor(self.base_concepts_.vectors, X.device)
        V = _row_normalise(concept_scores(X, self._vectors), self.normalize)
        if self.variant == "max":
            return torch.nn.functional.one_hot(V.argmax(1), V.shape[1]).float()
        return torch.nn.functional.normalize(V, dim=1)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"class_concept_matrix": self.class_concept_matrix_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.class_concept_matrix_ = tensors["class_concept_matrix"].astype(np.float32)
        self._vectors = None
