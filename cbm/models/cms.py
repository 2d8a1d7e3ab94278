"""Concept Matrix Search: training-free classification by concept profiles (Semenov et al., 2024).

With image-concept similarities ``V[n, k] = cos(I(x_n), T(c_k))`` and class-concept
similarities ``T[y, k] = cos(T(class_y), T(c_k))``, each row normalised to sum to one (as in
the released code), CMS predicts:

* ``variant="similarity"``: ``argmax_y cos(V_n, T_y)``. This is a linear head after
  normalising V's rows, so ``transform`` returns ``V_n / |V_n|`` and ``coef_ = T_y / |T_y|``.
* ``variant="max"`` (max-score): take the concept with the largest ``V[n, k]`` and predict the
  class with the largest ``T[y, k]`` for it; ``transform`` returns the one-hot top concept
  and ``coef_`` is T, which is again a linear head.

Nothing is learned from the labels: ``fit`` only records classes and the class texts'
embeddings, given as the constructor parameter ``class_embeddings`` or the fit parameter of
the same name, (K, d) in the order of the sorted class labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import HasMethods, StrOptions

from cbm.bank import ConceptBank
from cbm.losses import concept_scores
from cbm.models._base import BaseConceptModel, as_tensor, require_vectors


def _row_normalise(M: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return M / (M.sum(dim=1, keepdim=True) + eps)


class ConceptMatrixSearch(BaseConceptModel):
    """Training-free concept matrix search (CMS).

    Parameters
    ----------
    concepts : ConceptBank
        Concepts with text-embedding ``vectors``.
    class_embeddings : array-like of shape (K, d), optional
        Text embeddings of the class names/descriptions; may instead be passed to ``fit``.
    variant : {"similarity", "max"}, default="similarity"
    device : str
    """

    method = "cms"
    _parameter_constraints: dict = {
        "concepts": [HasMethods(["subset"])],
        "class_embeddings": ["array-like", None],
        "variant": [StrOptions({"similarity", "max"})],
        "device": [str],
    }

    def __init__(self, concepts: ConceptBank | None = None, class_embeddings: Any = None,
                 variant: str = "similarity", random_state: int = 0, device: str = "auto"):
        self.concepts = concepts
        self.class_embeddings = class_embeddings
        self.variant = variant
        self.random_state = random_state
        self.device = device

    def _fit(self, X: torch.Tensor, y: torch.Tensor, class_embeddings: Any = None) -> None:
        self._validate_params()
        bank = require_vectors(self)
        emb = class_embeddings if class_embeddings is not None else self.class_embeddings
        if emb is None:
            raise ValueError(
                "ConceptMatrixSearch needs class text embeddings: pass class_embeddings=(K, d) to the "
                "constructor or to fit (embed texts like 'a photo of a {class}')."
            )
        C = as_tensor(emb, self.device_)
        if C.shape != (len(self.classes_), self.n_features_in_):
            raise ValueError(
                f"class_embeddings must have shape (n_classes, dim) = ({len(self.classes_)}, "
                f"{self.n_features_in_}); got {tuple(C.shape)}."
            )
        self._vectors = as_tensor(bank.vectors, self.device_)
        T = _row_normalise(concept_scores(C, self._vectors))
        self.class_concept_matrix_ = T.cpu().numpy()
        coef = T if self.variant == "max" else torch.nn.functional.normalize(T, dim=1)
        self.coef_ = coef.cpu().numpy()
        self.intercept_ = np.zeros(len(self.classes_), np.float32)
        self.base_concepts_ = bank

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        if getattr(self, "_vectors", None) is None or self._vectors.device != X.device:
            self._vectors = as_tensor(self.base_concepts_.vectors, X.device)
        V = _row_normalise(concept_scores(X, self._vectors))
        if self.variant == "max":
            return torch.nn.functional.one_hot(V.argmax(1), V.shape[1]).float()
        return torch.nn.functional.normalize(V, dim=1)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"class_concept_matrix": self.class_concept_matrix_}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.class_concept_matrix_ = tensors["class_concept_matrix"].astype(np.float32)
        self._vectors = None
