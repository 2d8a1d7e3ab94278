"""BaseConceptModel: what every bottleneck method shares.

Every method is a concept layer (method-specific: projections, grounding predictors, a learned
bottleneck ...) followed by a linear head on concept activations::

    activations A = transform(X)                      # (N, M), named by concept_names_
    logits        = A @ coef_.T + intercept_ + residual_logits(X)   # (N, K)

Explanations, interventions and global edits work on that linear head alone, so they are the
same for every method. Subclasses implement the hooks marked "subclass hook".
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names_in, _check_sample_weight, validate_data

from cbm import exceptions
from cbm.arrays import softmax
from cbm.bank import ConceptBank
from cbm.exceptions import EditError, closest
from cbm.tensors import as_tensor, resolve_device


class NotFittedError(exceptions.NotFittedError, SklearnNotFittedError):
    """Raised by an unfitted model: both cbmkit's and scikit-learn's ``NotFittedError``."""


def seed_from(random_state: Any) -> int:
    """An int seed for the local generators of one fit, scikit-learn style: an int is used as given,
    a ``RandomState`` is drawn from, None gives fresh OS entropy. Global generators are never touched."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    return int(random_state)


#: scikit-learn constraints of the parameters that many models share, by name
SHARED_CONSTRAINTS: dict[str, list] = {
    "concepts": [HasMethods(["subset"]), None],
    "random_state": ["random_state"],
    "device": [str],
    "verbose": ["verbose"],
}


def parameter_constraints(*shared: str, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                          counts: tuple[str, ...] = (), **own: list) -> dict[str, list]:
    """A model's ``_parameter_constraints``: the ``shared`` entries of :data:`SHARED_CONSTRAINTS`,
    ``positive`` and ``non_negative`` reals, ``counts`` (whole numbers >= 1), then ``own`` as given."""
    table = {name: SHARED_CONSTRAINTS[name] for name in shared}
    table |= {name: [Interval(Real, 0, None, closed="neither")] for name in positive}
    table |= {name: [Interval(Real, 0, None, closed="left")] for name in non_negative}
    table |= {name: [Interval(Integral, 1, None, closed="left")] for name in counts}
    return table | own


def require_vectors(model: BaseConceptModel) -> ConceptBank:
    """The model's ``concepts`` bank, checked to have one vector per concept of the right size."""
    bank = model._concept_bank()
    name = type(model).__name__
    if bank is None or bank.vectors is None:
        raise ValueError(
            f"{name} needs a ConceptBank with concept vectors: pass concepts=bank where bank.vectors holds "
            "text embeddings or CAVs (`cbm concepts generate --source text|cav`, or ConceptBank.with_vectors)."
        )
    if bank.vectors.shape[1] != model.n_features_in_:
        raise ValueError(
            f"{name}: the concept vectors are {bank.vectors.shape[1]}-d but X is {model.n_features_in_}-d; "
            "embed images and concepts with the same encoder."
        )
    return bank


def check_sample_weight(model: Any, sample_weight: Any, X: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
    """``sample_weight`` validated as scikit-learn does (one non-negative float per sample, not all zero)
    as float32, refused when fewer than two classes keep a non-zero weight."""
    sw = _check_sample_weight(sample_weight, X, dtype=np.float32, ensure_non_negative=True, copy=True)
    weighted = np.unique(np.asarray(y_idx)[sw > 0])
    if len(weighted) < 2:
        raise ValueError(
            f"{type(model).__name__} needs samples of at least 2 classes with a non-zero sample_weight; only "
            f"the class {model.classes_[weighted[0]]!r} has any. Give the other classes weight, or drop them from y."
        )
    return sw.astype(np.float32, copy=False)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None,
                  index: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of per-sample ``values`` (B,), weighted by ``weight`` (N,) when given.

    ``index`` (B,) picks the batch's rows of ``weight``; the weights are then scaled to mean 1 over
    all N samples, so a minibatch's loss is an unbiased estimate of the full weighted mean
    ``sum_i w_i l_i / sum_i w_i`` (exactly that for a full batch).
    """
    if weight is None:
        return values.mean()
    if index is None:
        return (values * weight).sum() / weight.sum()
    return (values * weight[index]).sum() / (len(index) * weight.mean())


class BaseConceptModel(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Base class of all concept bottleneck estimators (scikit-learn conventions).

    A classifier and a transformer: ``transform`` gives concept activations named by
    ``get_feature_names_out()`` (so ``set_output(transform="pandas")`` labels columns with concept
    names), ``decision_function`` follows scikit-learn's shapes ((N,) for two classes), and
    :meth:`logits` always gives the (N, K) class scores. Constructor arguments are keyword-only.

    Fitted attributes shared by every method
    ----------------------------------------
    classes_ : ndarray of shape (K,)
    concepts_ : ConceptBank
        The concepts the head currently reads (after edits), M of them.
    coef_ : ndarray of shape (K, M)
        Class-concept weights.
    intercept_ : ndarray of shape (K,)
    n_features_in_ : int
        Embedding dimension d.
    n_iter_ : int
        Iterations (solver steps or epochs) the last fit ran, where the method iterates.
    """

    method: ClassVar[str] = "base"
    #: True when the method can score a new concept given as a vector (text embedding / CAV).
    supports_vector_concepts: ClassVar[bool] = False
    #: True when predictions also use a residual path on the raw embedding (PCBM-h).
    hybrid: ClassVar[bool] = False
    #: (low, high) that every concept activation lies in by construction (e.g. (0, 1) for
    #: probabilities), or None when activations are unbounded; explanations keep suggestions inside it.
    activation_range: ClassVar[tuple[float, float] | None] = None
    #: The space concept vectors are scored in (:meth:`to_vector_space`), or None when the concept
    #: layer is learned and cannot score a vector.
    vector_space: ClassVar[str | None] = None

    def _keep_params(self, params: dict[str, Any]) -> None:
        """Store each constructor argument in ``params`` (the constructor's ``locals()``) as the attribute
        of the same name, unchanged: what scikit-learn's ``get_params`` and ``clone`` read back."""
        for name in self._get_param_names():
            setattr(self, name, params[name])

    # -- subclass hooks ---------------------------------------------------------------------
    def _fit(self, X: torch.Tensor, y: torch.Tensor, **fit_params: Any) -> None:
        """Subclass hook: learn the concept layer and set ``base_concepts_``, ``coef_``, ``intercept_``.

        ``X`` is (N, d) float32 on ``self.device_``; ``y`` is (N,) int64 class indices. When the
        user gives weights, ``fit_params`` holds ``sample_weight``: (N,) float32, non-negative, not
        all zero (see :func:`weighted_mean`).
        """
        raise NotImplementedError

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        """Subclass hook: activations of ``base_concepts_`` for ``X``, shape (N, M_base)."""
        raise NotImplementedError

    def _score_vectors(self, X: torch.Tensor, vectors: torch.Tensor, intercepts: torch.Tensor) -> torch.Tensor:
        """Subclass hook: activations of extra concepts given as vectors (edits that add a concept)."""
        raise self._no_vectors_error()

    def _to_vector_space(self, X: torch.Tensor) -> torch.Tensor:
        """Subclass hook: ``X`` as :meth:`_score_vectors` reads it before the product with the vectors."""
        raise self._no_vectors_error()

    def _no_vectors_error(self) -> EditError:
        return EditError(
            f"{type(self).__name__} cannot score a concept given as a vector: its concept layer is learned. "
            "Retrain with the concept in the bank instead."
        )

    def _residual(self, X: torch.Tensor) -> torch.Tensor | None:
        """Subclass hook for hybrid models: residual logits (N, K) from the raw embedding."""
        return None

    def _extra_state(self) -> dict[str, np.ndarray]:
        """Subclass hook: learned tensors (besides the head) needed to predict, for saving."""
        return {}

    def _load_extra_state(self, tensors: dict[str, np.ndarray]) -> None:
        """Subclass hook: restore what :meth:`_extra_state` returned."""

    # -- fitting ----------------------------------------------------------------------------
    def _concept_bank(self) -> ConceptBank | None:
        """The concept bank this fit reads (the ``concepts`` parameter), refused when empty."""
        bank = getattr(self, "concepts", None)
        if bank is not None and len(bank) == 0:
            raise ValueError(
                f"{type(self).__name__} got an empty concept bank (0 concepts): there is nothing to put in "
                "the bottleneck. Generate or load concepts first (`cbm concepts generate`, ConceptBank(...))."
            )
        return bank

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None, **fit_params: Any) -> BaseConceptModel:
        """Fit on embeddings ``X`` (N, d) and labels ``y`` (N,), each sample's loss weighted by
        ``sample_weight`` (N,) when given (0 drops a sample, an integer repeats it). Returns self."""
        if hasattr(self, "_parameter_constraints"):
            self._validate_params()  # before device and random_state are used below
        self._check_fit_params(fit_params)
        X_np, y_np = self._validate_fit_data(X, y)
        self.classes_, y_idx = np.unique(y_np, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes; got 1 class: {list(self.classes_)}."
            )
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        if sample_weight is not None:
            sw = check_sample_weight(self, sample_weight, X_np, y_idx)
            fit_params["sample_weight"] = torch.as_tensor(sw, device=self.device_)
        self._seed = seed_from(getattr(self, "random_state", 0))
        self._fit(as_tensor(X_np, self.device_), torch.as_tensor(y_idx, device=self.device_), **fit_params)
        self.coef_ = np.asarray(self.coef_, dtype=np.float32)
        self.intercept_ = np.asarray(self.intercept_, dtype=np.float32)
        self.keep_ = np.arange(len(self.base_concepts_))
        self.concepts_ = self.base_concepts_
        self._added_vectors = np.zeros((0, self.n_features_in_), np.float32)
        self._added_intercepts = np.zeros(0, np.float32)
        return self

    def _check_fit_params(self, fit_params: dict[str, Any]) -> None:
        """Refuse keyword arguments :meth:`fit` does not take, naming the public method and the closest ones."""
        accepted = sorted(self.fit_param_names() | {"sample_weight"})
        for name in fit_params:
            if name not in accepted:
                hint = closest(name, accepted)
                raise TypeError(
                    f"{type(self).__name__}.fit() got an unexpected keyword argument {name!r}."
                    + (" Did you mean " + ", ".join(map(repr, hint)) + "?" if hint else "")
                    + f" It takes X, y and {', '.join(map(repr, accepted))}."
                )

    def _validate_fit_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """X as finite float32 (N, d) and y as one label per sample, with scikit-learn's messages."""
        name = type(self).__name__
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        if y is not None and not isinstance(y, str):
            shape = np.asarray(y).shape
            if len(shape) == 2 and shape[1] > 1:
                raise ValueError(
                    f"{name} predicts one class per sample, but y has shape {shape} (multi-label or "
                    "multi-output targets). Pass a 1-d array with one label per sample, or fit one model "
                    "per output."
                )
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        return X, y

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coef_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # activations are always float32
        return tags

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    # -- prediction -------------------------------------------------------------------------
    @property
    def concept_names_(self) -> list[str]:
        self._check_fitted()
        return list(self.concepts_.names)

    @property
    def class_names_(self) -> list[str]:
        self._check_fitted()
        return [str(c) for c in self.classes_]

    def _device(self) -> torch.device:
        return getattr(self, "device_", torch.device("cpu"))

    #: what a head edit changes (and :meth:`head_state` saves): weights, kept and added concepts
    HEAD_ATTRIBUTES = ("coef_", "intercept_", "keep_", "_added_vectors", "_added_intercepts", "concepts_")

    def head_state(self) -> dict[str, Any]:
        """A copy of the head (weights, intercepts, kept and added concepts), for :meth:`set_head_state`."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v)
                for k in self.HEAD_ATTRIBUTES if (v := getattr(self, k, None)) is not None}

    def set_head_state(self, state: dict[str, Any]) -> None:
        """Restore a head saved by :meth:`head_state` exactly."""
        for k, v in state.items():
            setattr(self, k, v.copy() if isinstance(v, np.ndarray) else v)

    @property
    def added_concept_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (m, d) and intercepts (m,) of the concepts added by edits, in ``concept_names_`` order
        (they come after the kept base concepts: column ``len(keep_) + i`` is added concept ``i``)."""
        self._check_fitted()
        return self._added_vectors, self._added_intercepts

    @torch.no_grad()
    def score_concept_vectors(self, X: Any, vectors: Any, intercepts: Any) -> np.ndarray:
        """Activations (N, m) for embeddings ``X`` of concepts given as vectors (m, d) and intercepts (m,).

        What :meth:`add_concept` would add as columns of :meth:`transform`, without changing the
        model; raises :class:`~cbm.exceptions.EditError` when the method's concept layer is learned
        and cannot score a vector.
        """
        dev = self._device()
        out = self._score_vectors(as_tensor(X, dev), as_tensor(vectors, dev), as_tensor(intercepts, dev))
        return out.float().cpu().numpy()

    def score_concept_vectors_tensor(self, X: torch.Tensor, vectors: torch.Tensor,
                                     intercepts: torch.Tensor) -> torch.Tensor:
        """:meth:`score_concept_vectors` on tensors with gradients kept (to locate a concept's evidence in
        an image); returns (N, m) on the device of ``X``."""
        self._check_fitted()
        dev = self._device()
        out = self._score_vectors(X.to(dev), vectors.to(dev), intercepts.to(dev))
        return out.to(X.device)

    @torch.no_grad()
    def to_vector_space(self, X: Any) -> np.ndarray:
        """Embeddings (N, d) as this model's concept vectors read them (see ``vector_space``)."""
        self._check_fitted()
        return self._to_vector_space(self._check_X(X)).float().cpu().numpy()

    def fit_concept_vector(self, positives: Any, negatives: Any, *, method: str | None = None,
                           random_state: int = 0) -> dict[str, Any]:
        """A concept vector fitted in this model's own scoring space on embeddings of examples that show
        the concept (``positives``) and that do not (``negatives``).

        Models whose activations are probabilities (``activation_range == (0, 1)``) get a
        class-balanced logistic regression, so 0.5 is its boundary as for every grounded concept; the
        others a linear-SVM CAV, whose activation is the signed distance to the boundary (0). Returns
        :func:`cbm.concepts.cav.fit_cav`'s dict (``vector``, ``intercept``, ``val_acc``, ...) plus
        ``method`` and ``space``. Raises :class:`~cbm.exceptions.EditError` for learned concept layers.
        """
        from cbm.concepts.cav import fit_cav

        if self.vector_space is None:
            raise self._no_vectors_error()
        method = method or ("logistic" if self.activation_range == (0.0, 1.0) else "svm")
        cav = fit_cav(self.to_vector_space(positives), self.to_vector_space(negatives), method=method,
                      random_state=random_state)
        return {**cav, "method": method, "space": self.vector_space}

    @classmethod
    def fit_param_names(cls) -> set[str]:
        """Names of the extra keyword arguments :meth:`fit` passes to this method (``X_val``, ...);
        ``sample_weight``, which every method takes, is not listed."""
        return set(inspect.signature(cls._fit).parameters) - {"self", "X", "y", "fit_params", "sample_weight"}

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The concept names, one per column of :meth:`transform`."""
        self._check_fitted()
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray(self.concept_names_, dtype=object)

    def transform(self, X: Any) -> np.ndarray:
        """Concept activations (N, M) of the current concepts, in ``concept_names_`` order."""
        return self._transform(X)

    @torch.no_grad()
    def _transform(self, X: Any) -> np.ndarray:
        self._check_fitted()
        Xt = self._check_X(X)
        parts = [self._activations(Xt)[:, torch.as_tensor(self.keep_, device=Xt.device)]]
        if len(self._added_vectors):
            parts.append(self._score_vectors(
                Xt, as_tensor(self._added_vectors, Xt.device), as_tensor(self._added_intercepts, Xt.device)
            ))
        return torch.cat(parts, dim=1).float().cpu().numpy()

    def _check_X(self, X: Any) -> torch.Tensor:
        """X validated against the fitted dimension (scikit-learn's checks and messages), as a tensor."""
        if not isinstance(X, torch.Tensor):
            return as_tensor(validate_data(self, X, dtype=np.float32, reset=False), self._device())
        Xt = as_tensor(X, self._device())
        if Xt.ndim != 2:
            raise ValueError(f"Expected a 2D array of embeddings (n_samples, dim); got shape {tuple(Xt.shape)}.")
        if Xt.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xt.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input. Use embeddings from the same encoder."
            )
        if not bool(torch.isfinite(Xt).all()):
            raise ValueError("Input X contains NaN or infinity; check the embedding cache.")
        return Xt

    @torch.no_grad()
    def residual_logits(self, X: Any) -> np.ndarray:
        """Residual logits (N, K) of hybrid models; zeros for pure concept models."""
        self._check_fitted()
        Xt = self._check_X(X)
        r = self._residual(Xt)
        return np.zeros((len(Xt), len(self.classes_)), np.float32) if r is None else r.float().cpu().numpy()

    def logits_from_activations(self, A: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        """Class scores from concept activations (and residual): the head alone, no encoder pass."""
        self._check_fitted()
        out = np.asarray(A, np.float32) @ self.coef_.T + self.intercept_
        return out if residual is None else out + residual

    def logits(self, X: Any) -> np.ndarray:
        """Class scores (logits) (N, K), for any number of classes."""
        res = self.residual_logits(X) if self.hybrid else None
        return self.logits_from_activations(self._transform(X), res)

    def decision_function(self, X: Any) -> np.ndarray:
        """scikit-learn's decision function: logits (N, K), or for two classes the margin
        ``logit[1] - logit[0]`` (N,), positive for ``classes_[1]`` (what ``roc_auc`` scoring reads)."""
        z = self.logits(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, K): the softmax of the logits."""
        return softmax(self.logits(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class of each sample (N,)."""
        z = self.logits(X)
        return self.classes_[z.argmax(1)]

    # -- structure changes used by global edits ----------------------------------------------
    def remove_concept(self, j: int) -> None:
        """Drop concept ``j`` (a column of ``coef_``) from the model entirely."""
        self._check_fitted()
        m_base = len(self.keep_)
        if j < m_base:
            self.keep_ = np.delete(self.keep_, j)
        else:
            self._added_vectors = np.delete(self._added_vectors, j - m_base, axis=0)
            self._added_intercepts = np.delete(self._added_intercepts, j - m_base)
        self.coef_ = np.delete(self.coef_, j, axis=1)
        self.concepts_ = self.concepts_.subset([i for i in range(len(self.concepts_)) if i != j])

    def add_concept(self, bank: ConceptBank, weights: np.ndarray) -> None:
        """Append concepts given as vectors (a 1+-concept bank) with class weights (K, m)."""
        self._check_fitted()
        if bank.vectors is None:
            raise EditError("The concept to add has no vector; embed its text or fit a CAV first.")
        self._score_vectors(as_tensor(np.zeros((1, self.n_features_in_)), self._device()),
                            as_tensor(bank.vectors, self._device()),
                            as_tensor(np.zeros(len(bank)), self._device()))  # raises if unsupported
        weights = np.asarray(weights, np.float32).reshape(len(self.classes_), len(bank))
        self._added_vectors = np.concatenate([self._added_vectors, bank.vectors.astype(np.float32)])
        inter = bank.intercepts if bank.intercepts is not None else np.zeros(len(bank), np.float32)
        self._added_intercepts = np.concatenate([self._added_intercepts, inter.astype(np.float32)])
        self.coef_ = np.concatenate([self.coef_, weights], axis=1)
        self.concepts_ = self.concepts_.merge(bank.with_vectors(None) if self.concepts_.vectors is None else bank)

    # -- persistence ------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, np.ndarray]:
        """Everything learned, as named float arrays (saved as safetensors)."""
        self._check_fitted()
        out = {
            "coef": self.coef_, "intercept": self.intercept_,
            "keep": self.keep_.astype(np.int64),
            "added_vectors": self._added_vectors, "added_intercepts": self._added_intercepts,
        }
        out.update({f"extra.{k}": np.asarray(v) for k, v in self._extra_state().items()})
        if getattr(self, "source_repair_", None) is not None:  # NeutraliseAtSource: saved with the weights
            from cbm.models.source_repair import to_tensors

            out.update(to_tensors(self.source_repair_))
        return out

    def load_state_tensors(self, tensors: dict[str, np.ndarray], classes: list, base_concepts: ConceptBank,
                           concepts: ConceptBank, n_features_in: int) -> None:
        """Restore a fitted model from :meth:`state_tensors` (used by ``cbm.io.load_model``)."""
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = int(n_features_in)
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        self.base_concepts_, self.concepts_ = base_concepts, concepts
        self.coef_ = tensors["coef"].astype(np.float32)
        self.intercept_ = tensors["intercept"].astype(np.float32)
        self.keep_ = tensors["keep"].astype(np.int64)
        self._added_vectors = tensors["added_vectors"].astype(np.float32)
        self._added_intercepts = tensors["added_intercepts"].astype(np.float32)
        self._load_extra_state({k[6:]: v for k, v in tensors.items() if k.startswith("extra.")})
        from cbm.models.source_repair import from_tensors

        repair = from_tensors(tensors)
        if repair is not None:
            self.source_repair_ = repair

