"""Edits that refit part of the model on its training data (:class:`TrainingData`): drop a concept
and refit the head (:class:`RefitWithout`), or erase it from the representation with LEACE first
(:class:`EraseConcept`); :class:`RefitRecord` undoes either exactly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cbm.data.evalfile import load_eval_data
from cbm.edits._base import Edit, EditRecord, Plan
from cbm.exceptions import EditError
from cbm.explain import class_index, concept_index
from cbm.metrics import independence_weights


@dataclass
class TrainingData:
    """The training site's data that refitting edits need (never shifted data).

    ``X`` (N, d) embeddings and ``y`` (N,) labels of the training split; ``concept_labels``
    (N, M: one column per grounded concept, in ``model.base_concepts_`` order; 1 yes, 0 no,
    -1 unknown) let an edit re-ground concept predictors;
    ``X_val``/``y_val`` drive early stopping of the refitted head. Build it yourself, or let
    :meth:`for_model` read the model directory's ``data.npz`` (splits ``train`` and ``val``,
    ``concept_labels_train``), as ``cbm demo`` writes it.
    """

    X: np.ndarray
    y: np.ndarray
    concept_labels: np.ndarray | None = None
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, np.float32)
        self.y = np.asarray(self.y)
        if self.X.ndim != 2 or len(self.X) != len(self.y):
            raise EditError(f"TrainingData needs X (N, d) and y (N,) of the same length; got {self.X.shape} "
                            f"and {self.y.shape}.")
        if self.concept_labels is not None and len(self.concept_labels) != len(self.y):
            raise EditError("TrainingData.concept_labels must have one row per training sample.")

    @classmethod
    def from_npz(cls, path: str | Any) -> TrainingData:
        """Splits ``train`` (and ``val`` when present) of an evaluation ``.npz``."""
        data = load_eval_data(path)
        if "train" not in data:
            raise EditError(f"{str(path)!r} has no 'train' split (X_train, y_train); refitting edits need the "
                            "training data: pass edit.using(TrainingData(X, y, ...)).")
        tr, va = data["train"], data.get("val", {})
        return cls(tr["X"], tr["y"], tr.get("concept_labels"), va.get("X"), va.get("y"))

    @classmethod
    def for_model(cls, model: Any) -> TrainingData:
        """The training data stored with the model's directory (``data.npz``)."""
        from pathlib import Path

        where = getattr(model, "model_dir_", None)
        path = None if where is None else Path(where) / "data.npz"
        if path is None or not path.is_file():
            raise EditError("This edit refits on the training data, which was not given and is not stored "
                            f"with the model ({str(path) if path else 'no model directory'}); pass "
                            "edit.using(TrainingData(X_train, y_train, ...)).")
        return cls.from_npz(path)


@dataclass
class RefitRecord(EditRecord):
    """A committed refitting edit; undo restores the whole fitted state (predictors, eraser, head)."""

    def undo(self, model: Any) -> None:
        import copy

        model.__dict__.clear()
        model.__dict__.update(copy.deepcopy(self.before))


def refit_recorded(edit: Edit, model: Any, refit: Any) -> RefitRecord:
    """Run ``refit()`` (which changes ``model`` in place) as ``edit``: the model is restored when it
    fails; the record lists every head weight that changed (``new`` None: the concept was removed)."""
    import copy

    before = copy.deepcopy(model.__dict__)
    names_before, W0 = list(model.concept_names_), np.asarray(model.coef_).copy()
    try:
        refit()
    except BaseException:
        model.__dict__.clear()
        model.__dict__.update(before)
        raise
    cn, kn = model.class_names_, model.concept_names_
    changes = []
    for b, name in enumerate(names_before):
        for a, c in enumerate(cn):
            new = float(model.coef_[a, kn.index(name)]) if name in kn else None
            if new is None or new != float(W0[a, b]):
                changes.append({"class": c, "concept": name, "old": float(W0[a, b]), "new": new})
    return RefitRecord(edit, changes, before)


class RefitEdit(Edit, abstract=True):
    """Base of edits that refit part of the model on its training data (see :class:`TrainingData`).

    ``edit.using(data)`` attaches the data (not serialised); without it, ``apply`` reads the
    model directory's ``data.npz``. Replaying the edit on the same saved version and data gives
    the same weights (the fits are seeded).
    """

    kind: ClassVar[str] = "refit-edit"

    def using(self, data: TrainingData | None) -> RefitEdit:
        """Attach the training data to use (returns self)."""
        object.__setattr__(self, "_data", data)
        return self

    def data_for(self, model: Any) -> TrainingData:
        """The training data attached with :meth:`using`, else the data stored with the model."""
        data = getattr(self, "_data", None)
        return data if data is not None else TrainingData.for_model(model)

    def plan(self, model: Any) -> Plan:
        """Validate against ``model``; the weight changes are known only after the refit."""
        self._check(model)
        return Plan(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 0), np.float32))

    def _check(self, model: Any) -> int:
        j = concept_index(model, self.concept)
        if not hasattr(model, "refit"):
            raise EditError(f"{type(model).__name__} cannot refit its concept layer; {self.kind} needs a "
                            "KnoBo model (cbm.models.KnoBo).")
        if len(model.concept_names_) == 1:
            raise EditError(f"Cannot remove {model.concept_names_[j]!r}: it is the model's only concept.")
        return j

    def _refit(self, model: Any, data: TrainingData) -> None:
        raise NotImplementedError

    def apply(self, model: Any) -> EditRecord:
        self._check(model)
        data = self.data_for(model)
        return refit_recorded(self, model, lambda: self._refit(model, data))

    def training_flags(self, model: Any, data: TrainingData, threshold: float = 0.5) -> np.ndarray:
        """The concept as the model's own predictor sees it on the training images (N,) bool."""
        j = concept_index(model, self.concept)
        return model.transform(data.X)[:, j] > threshold

    def _nuisance_and_drop(self, model: Any, data: TrainingData) -> tuple[np.ndarray, dict[str, Any]]:
        """The concept's training flags and the refit's weights (read before the concept is dropped)."""
        flags = self.training_flags(model, data)
        weights = self._balancing_weights(model, data, flags)
        model.remove_concept(concept_index(model, self.concept))
        return flags, weights

    def _balancing_weights(self, model: Any, data: TrainingData, flags: np.ndarray) -> dict[str, Any]:
        """``refit`` keywords weighing the head's training (and early-stopping) data so the concept,
        as the model's own predictor sees it, is independent of the class (when ``reweight``)."""
        if not self.reweight:
            return {}
        out = {"sample_weight": independence_weights(data.y, flags)}
        if data.X_val is not None and data.y_val is not None:
            j = concept_index(model, self.concept)
            out["val_weight"] = independence_weights(data.y_val, model.transform(data.X_val)[:, j] > 0.5)
        return out

    def _refit_model(self, model: Any, data: TrainingData, flags: np.ndarray, weights: dict[str, Any]) -> None:
        labels = data.concept_labels if self.refit_predictors else None
        model.refit(data.X, data.y, concept_labels=labels, nuisance=flags if labels is not None else None,
                    X_val=data.X_val, y_val=data.y_val, **weights)


@dataclass
class RefitWithout(RefitEdit):
    """Drop ``concept`` and refit the head on the same training data (seconds). With
    ``refit_predictors`` and per-image concept labels in the training data, the concept predictors
    are re-grounded too (slower), weighted so the dropped concept (as the model's own predictor
    sees it) is independent of each label. With ``reweight``, the head's training images are
    weighted so that concept is independent of the class (each (class, concept on/off) group
    weighs ``P(class) P(on/off) / P(class, on/off)``), so the head cannot learn the concept's
    correlation with a class through the remaining concepts either."""

    concept: int | str
    refit_predictors: bool = False
    reweight: bool = False
    kind: ClassVar[str] = "refit-without"

    def plain(self) -> str:
        return self.with_options(f"refit the head on the training data without “{self.concept}”")

    def _refit(self, model: Any, data: TrainingData) -> None:
        flags, weights = self._nuisance_and_drop(model, data)
        self._refit_model(model, data, flags, weights)


#: fitted erasers by the content of what they were fitted on (images kept, concept flags); a few kept
_ERASERS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def leace_fitter() -> type:
    """concept_erasure's ``LeaceFitter``, imported without the FutureWarning its ``torch.jit.script``
    decorators raise on current torch (noise in ``cbm demo``'s output, nothing for the user to do)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        from concept_erasure import LeaceFitter
    return LeaceFitter


@dataclass
class EraseConcept(RefitEdit):
    """Erase ``concept`` from the representation with LEACE, then drop it and refit.

    The eraser (the closed-form least-squares concept eraser of Belrose et al., 2023) is fitted on
    the training images of classes other than ``cls`` (where the concept should be independent of
    the class) against the model's own predictor of the concept (thresholded at ``threshold``),
    never against hidden ground truth; ``class_conditional`` erases the concept's direction within
    each of those classes instead (one column per class: the flags centred within that class, so
    no column tells the classes apart and no class direction is erased). The eraser is stored in
    the model (saved with its weights) and applied to X before every concept predictor and the
    head; the head is refitted on the erased training embeddings (and, with ``refit_predictors``,
    the concept predictors too); ``reweight`` weighs that refit as :class:`RefitWithout` does.
    """

    concept: int | str
    cls: int | str | None = None
    threshold: float = 0.5
    class_conditional: bool = False
    refit_predictors: bool = False
    reweight: bool = False
    kind: ClassVar[str] = "erase-concept"

    def plain(self) -> str:
        return self.with_options(f"erase “{self.concept}” from the embeddings, then refit the head"
                                 + (f" (eraser fitted outside {self.cls})" if self.cls is not None else ""))

    def _check(self, model: Any) -> int:
        j = super()._check(model)
        if getattr(model, "eraser_left_", None) is not None:
            raise EditError("The model already has a concept eraser; undo that edit (or start from an earlier "
                            "version) before erasing another concept.")
        if self.cls is not None:
            class_index(model, self.cls)
        return j

    def fit_eraser(self, model: Any, data: TrainingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LEACE eraser (L (d, r), R (r, d), bias (d,)) for ``model`` on ``data`` (nothing changed)."""
        import torch

        LeaceFitter = leace_fitter()
        flags = self.training_flags(model, data, self.threshold)
        y = np.asarray(data.y).astype(str)
        keep = np.ones(len(y), bool) if self.cls is None else y != model.class_names_[class_index(model, self.cls)]
        if flags[keep].all() or not flags[keep].any():
            raise EditError(f"The model's predictor of {self.concept!r} is {'on' if flags[keep].any() else 'off'} "
                            "for every training image used to fit the eraser; nothing to erase.")
        z = flags[keep].astype(np.float32)[:, None]
        if self.class_conditional:
            z = within_class_columns(flags[keep], y[keep])
        h = hashlib.sha1(str(z.shape).encode())
        for a in (data.X[keep], z):
            h.update(np.ascontiguousarray(a).tobytes())
        key = h.hexdigest()
        if key not in _ERASERS:  # the same images and flags give the same eraser: fitted once (about 1 s)
            X = torch.as_tensor(data.X[keep], dtype=torch.float64)
            fitter = LeaceFitter(X.shape[1], z.shape[1], dtype=torch.float64)
            fitter.update(X, torch.as_tensor(z, dtype=torch.float64))
            er = fitter.eraser
            bias = er.bias if er.bias is not None else torch.zeros(X.shape[1], dtype=torch.float64)
            while len(_ERASERS) >= 8:
                _ERASERS.pop(next(iter(_ERASERS)))
            _ERASERS[key] = (er.proj_left.float().numpy(), er.proj_right.float().numpy(), bias.float().numpy())
        return tuple(a.copy() for a in _ERASERS[key])

    def _refit(self, model: Any, data: TrainingData) -> None:
        eraser = self.fit_eraser(model, data)
        flags, weights = self._nuisance_and_drop(model, data)
        model.set_eraser(*eraser)
        self._refit_model(model, data, flags, weights)


def within_class_columns(flags: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, C) float32: per class with both flag values, the flags centred within that class (0 elsewhere)."""
    cols = []
    for c in sorted(set(y.tolist())):
        inside = y == c
        f = flags[inside].astype(np.float32)
        if 0 < f.sum() < len(f):
            col = np.zeros(len(y), np.float32)
            col[inside] = f - f.mean()
            cols.append(col)
    if not cols:
        raise EditError("No class has images both with and without the concept (as the model's predictor "
                        "sees it); a class-conditional eraser cannot be fitted. Use class_conditional=False.")
    return np.stack(cols, 1)


def concept_layer_token(model: Any) -> str:
    """Fingerprint of the concept layer (what refitting edits change: predictors, eraser)."""
    h = hashlib.sha1()
    layer = {k.removeprefix("extra."): v for k, v in model.state_tensors().items() if k.startswith("extra.")}
    for k, v in sorted(layer.items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()
