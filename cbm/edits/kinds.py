"""Global edits of a concept model's linear head, previewed on cached activations before commit.

An edit is a small dataclass (:class:`Prune`, :class:`PruneNormalize`, :class:`SetWeight`,
:class:`ScaleWeight`, :class:`RemoveConcept`, :class:`AddConcept`, :class:`ApplyPrior`).
``edit.plan(model)`` resolves names and validates without touching the model; ``edit.apply(model)``
commits and returns an :class:`EditRecord` holding the old and new values and a snapshot of the
head, so ``record.undo(model)`` restores the exact previous weights. A failed commit restores the
snapshot before re-raising.

:func:`cbm.edits.preview.preview` evaluates an edit on :class:`~cbm.edits.preview.EvalSet` caches
(activations computed once with ``model.transform``): it only updates the cached logits by the
changed block of weights, ``logits[:, rows] += A[:, cols] @ (new - old).T`` (a rank-1 update for a
single weight), so no encoder pass and no re-transform is needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cbm.bank import ConceptBank, Provenance
from cbm.data.evalfile import load_eval_data
from cbm.exceptions import EditError, unknown_name_message
from cbm.explain import class_index, concept_index
from cbm.metrics import independence_weights

_F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Plan:
    """What an edit will change, resolved against one model state (nothing mutated yet).

    ``new`` is the (len(rows), len(cols)) block of ``coef_`` after the edit; ``remove`` drops a
    concept column after that block is written (its block is zeros, so the logit update is exact);
    ``add`` appends concepts (a bank) with class weights (K, m).
    """

    rows: np.ndarray
    cols: np.ndarray
    new: np.ndarray
    remove: int | None = None
    add: tuple[ConceptBank, np.ndarray] | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        new = np.asarray(self.new, np.float64)
        if new.size and not (np.isfinite(new).all() and np.abs(new).max() <= _F32_MAX):
            raise EditError(f"This edit would make a weight overflow float32 (|w| > {_F32_MAX:.3g}) or not "
                            "finite; use a smaller value or factor.")

    def old(self, model: Any) -> np.ndarray:
        return np.asarray(model.coef_)[np.ix_(self.rows, self.cols)]


@dataclass
class EditRecord:
    """A committed edit: the edit, the weight changes (class, concept, old, new) and an exact undo."""

    edit: Edit
    changes: list[dict[str, Any]]
    before: dict[str, Any] = field(repr=False)

    def undo(self, model: Any) -> None:
        """Restore the head exactly as it was before the edit."""
        model.set_head_state(self.before)


def _finite(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{what} must be a number; got {value!r}.") from None
    if not np.isfinite(v):
        raise EditError(f"{what} must be a finite number; got {value!r}.")
    if abs(v) > _F32_MAX:
        raise EditError(f"{what} {value!r} is too large: weights are float32 (|w| <= {_F32_MAX:.3g}).")
    return v


class Edit:
    """Base class of global edits. Subclasses implement :meth:`plan`."""

    kind: ClassVar[str] = "edit"
    _registry: ClassVar[dict[str, type[Edit]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Edit._registry[cls.kind] = cls

    def plan(self, model: Any) -> Plan:
        raise NotImplementedError

    def apply(self, model: Any) -> EditRecord:
        """Commit the edit to ``model``; returns the record (old/new values, exact undo)."""
        plan = self.plan(model)
        before = model.head_state()
        try:
            commit(model, plan)
        except BaseException:
            model.set_head_state(before)
            raise
        return EditRecord(self, plan.changes, before)

    def describe(self) -> str:
        """Every field, e.g. ``prune(cls='Shirt', concept='tag in the corner')`` (what the log records)."""
        fields = {k: ({a: b for a, b in v.items() if not isinstance(b, list)} if isinstance(v, dict) else v)
                  for k, v in self.to_dict().items() if k != "kind" and not isinstance(v, list)}
        return f"{self.kind}(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    def short_label(self) -> str:
        """A short label for tables: the kind, then the options switched on, e.g.
        ``erase-concept (class-conditional, reweight)``."""
        on = [f.name.replace("_", "-") for f in dataclasses.fields(self)
              if isinstance(getattr(self, f.name), bool) and getattr(self, f.name) and f.default is False]
        return self.kind + (f" ({', '.join(on)})" if on else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``Edit.from_dict`` inverts it exactly)."""
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Edit:
        kind = d.get("kind")
        if kind not in Edit._registry:
            raise EditError(f"Unknown edit kind {kind!r} in the edit log; known: {sorted(Edit._registry)}.")
        return Edit._registry[kind](**{k: v for k, v in d.items() if k != "kind"})


def commit(model: Any, plan: Plan) -> None:
    """Write a :class:`Plan` into the model (use ``Edit.apply``, which also records an undo)."""
    coef = np.array(model.coef_, dtype=np.float32, copy=True)
    coef[np.ix_(plan.rows, plan.cols)] = plan.new
    model.coef_ = coef
    if plan.remove is not None:
        model.remove_concept(plan.remove)
    if plan.add is not None:
        model.add_concept(*plan.add)


def _changes(model: Any, rows: np.ndarray, cols: np.ndarray, new: np.ndarray) -> list[dict[str, Any]]:
    old = np.asarray(model.coef_)[np.ix_(rows, cols)]
    cn, kn = model.class_names_, model.concept_names_
    return [{"class": cn[rows[a]], "concept": kn[cols[b]], "old": float(old[a, b]), "new": float(new[a, b])}
            for a, b in zip(*np.nonzero(old != new), strict=True)]


def _check_classes_keep_concepts(model: Any, rows: np.ndarray, cols: np.ndarray, new: np.ndarray,
                                 drop: int | None = None) -> None:
    W = np.array(model.coef_, copy=True)
    had = (W != 0).any(1)
    W[np.ix_(rows, cols)] = new
    if drop is not None:
        W = np.delete(W, drop, axis=1)
    empty = [model.class_names_[k] for k in np.flatnonzero(had & ~(W != 0).any(1))]
    if empty:
        raise EditError(
            f"This edit would leave class(es) {empty} with no concept (all weights zero), so they could "
            "never be predicted from concepts. Give the class another concept first (SetWeight/AddConcept)."
        )


def _weight_plan(model: Any, cls: int | str | None, concept: int | str, fn) -> Plan:
    """Plan for edits of one column (one class, or every class when ``cls`` is None)."""
    j = concept_index(model, concept)
    rows = np.arange(len(model.class_names_)) if cls is None else np.array([class_index(model, cls)])
    cols = np.array([j])
    new = fn(np.asarray(model.coef_)[np.ix_(rows, cols)].astype(np.float32))
    _check_classes_keep_concepts(model, rows, cols, new)
    return Plan(rows, cols, new, changes=_changes(model, rows, cols, new))


@dataclass
class Prune(Edit):
    """Zero the weight of ``concept`` for class ``cls`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    kind: ClassVar[str] = "prune"

    def plan(self, model: Any) -> Plan:
        return _weight_plan(model, self.cls, self.concept, np.zeros_like)


@dataclass
class PruneNormalize(Edit):
    """Zero ``W[cls, concept]`` and rescale the class row to keep its L1 norm (PCBM's model editing)."""

    cls: int | str
    concept: int | str
    kind: ClassVar[str] = "prune-normalize"

    def plan(self, model: Any) -> Plan:
        k, j = class_index(model, self.cls), concept_index(model, self.concept)
        row = np.asarray(model.coef_[k], np.float32).copy()
        norm = np.abs(row).sum()
        row[j] = 0.0
        rest = np.abs(row).sum()
        if rest > 0:
            row *= np.float32(norm / rest)
        rows, cols = np.array([k]), np.arange(len(row))
        _check_classes_keep_concepts(model, rows, cols, row[None])
        return Plan(rows, cols, row[None], changes=_changes(model, rows, cols, row[None]))


@dataclass
class SetWeight(Edit):
    """Set ``W[cls, concept] = value`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    value: float
    kind: ClassVar[str] = "set-weight"

    def plan(self, model: Any) -> Plan:
        v = _finite(self.value, "The new weight")
        return _weight_plan(model, self.cls, self.concept, lambda w: np.full_like(w, v))


@dataclass
class ScaleWeight(Edit):
    """Multiply ``W[cls, concept]`` by ``factor`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    factor: float
    kind: ClassVar[str] = "scale-weight"

    def plan(self, model: Any) -> Plan:
        f = _finite(self.factor, "The scale factor")
        with np.errstate(over="ignore"):  # an overflow gives inf, which Plan refuses with a clear message
            return _weight_plan(model, self.cls, self.concept, lambda w: w * np.float32(f))


@dataclass
class RemoveConcept(Edit):
    """Remove ``concept`` from the model entirely (its column and its activation)."""

    concept: int | str
    kind: ClassVar[str] = "remove-concept"

    def plan(self, model: Any) -> Plan:
        j = concept_index(model, self.concept)
        if len(model.concept_names_) == 1:
            raise EditError(f"Cannot remove {model.concept_names_[0]!r}: it is the model's only concept.")
        rows, cols = np.arange(len(model.class_names_)), np.array([j])
        new = np.zeros((len(rows), 1), np.float32)
        _check_classes_keep_concepts(model, rows, cols, new, drop=j)
        return Plan(rows, cols, new, remove=j, changes=_changes(model, rows, cols, new))


@dataclass
class AddConcept(Edit):
    """Add a concept given as a vector (text embedding or CAV) with class weights.

    ``weights`` maps class name -> weight (missing classes get 0) or lists one weight per class.
    Build it with :meth:`from_text` (a multimodal encoder's text tower) or :meth:`from_vector` (a CAV).
    """

    name: str
    vector: list[float]
    weights: dict[str, float] | list[float]
    intercept: float = 0.0
    text: str | None = None
    source: str = "text"
    encoder_fingerprint: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "add-concept"

    @classmethod
    def from_text(cls, text: str, encoder: Any, weights: dict[str, float] | list[float],
                  name: str | None = None, template: str = "{}") -> AddConcept:
        """Embed ``text`` with ``encoder.encode_text`` (a CLIP-style text tower)."""
        from cbm.concepts.text import encode_texts, encoder_fingerprint

        vec = encode_texts(encoder, [template.format(text)])[0]
        return cls(name or text, vec.tolist(), weights, 0.0, text, "text", encoder_fingerprint(encoder),
                   {"template": template})

    @classmethod
    def from_vector(cls, name: str, vector: Any, weights: dict[str, float] | list[float],
                    intercept: float = 0.0, source: str = "cav", **detail: Any) -> AddConcept:
        """A concept from a direction, e.g. ``fit_cav(pos, neg)["vector"]`` and its intercept."""
        return cls(name, np.asarray(vector, np.float32).ravel().tolist(), weights, float(intercept),
                   None, source, None, detail)

    @classmethod
    def from_examples(cls, name: str, positives: Any, negatives: Any, weights: dict[str, float] | list[float],
                      method: str | None = None, random_state: int = 0, *, model: Any = None,
                      **detail: Any) -> AddConcept:
        """A concept fitted on embeddings (n, d) of examples that show it and that do not (images
        picked in the app's gallery, a discovered slice).

        With ``model`` (recommended) the vector is fitted in the space the model scores its own
        concepts in (:meth:`~cbm.models.BaseConceptModel.fit_concept_vector`: unit embeddings for
        KnoBo and LaBo, a calibrated probability for KnoBo), so it fires on its examples there.
        Without, it is a CAV on the raw embeddings (:func:`cbm.concepts.cav.fit_cav`, default
        ``"svm"``), which only models that score raw embeddings (PCBM) accept.
        """
        if model is not None:
            cav = model.fit_concept_vector(positives, negatives, method=method, random_state=random_state)
        else:
            from cbm.concepts.cav import fit_cav

            cav = {**fit_cav(positives, negatives, method=method or "svm", random_state=random_state),
                   "method": method or "svm", "space": "embedding"}
        return cls.from_vector(name, cav["vector"], weights, cav["intercept"], method=cav["method"],
                               space=cav["space"], n_positive=len(positives), n_negative=len(negatives),
                               train_acc=float(cav["train_acc"]), val_acc=float(cav["val_acc"]), **detail)

    def bank(self, default_fingerprint: str | None = None) -> ConceptBank:
        """The concept as a one-concept bank; a vector with no fingerprint (a CAV fitted on the
        model's own embeddings) takes ``default_fingerprint``."""
        vec = np.asarray(self.vector, np.float32).reshape(1, -1)
        if not np.isfinite(vec).all():
            raise EditError(f"The vector of concept {self.name!r} has NaN or infinite values.")
        return ConceptBank([self.name], [self.text or self.name], vectors=vec, intercepts=[self.intercept],
                           provenance=[Provenance(self.source, dict(self.detail))],
                           encoder_fingerprint=self.encoder_fingerprint or default_fingerprint)

    def plan(self, model: Any) -> Plan:
        if self.name in model.concept_names_:
            raise EditError(f"The model already has a concept named {self.name!r}; pick another name.")
        if not getattr(model, "supports_vector_concepts", False):
            raise EditError(f"{type(model).__name__} cannot score a concept given as a vector (its "
                            "concept layer is learned); retrain with the concept in the bank instead.")
        space = self.detail.get("space")
        if space is not None and space != getattr(model, "vector_space", None):
            raise EditError(f"Concept {self.name!r} was fitted on {space}s, but {type(model).__name__} scores "
                            f"concepts on {model.vector_space}s, where it would not separate its examples. "
                            "Fit it for this model: AddConcept.from_examples(..., model=model).")
        fp = getattr(model, "concepts_", None) and model.concepts_.encoder_fingerprint
        bank = self.bank(fp)
        if bank.vectors.shape[1] != model.n_features_in_:
            raise EditError(f"Concept {self.name!r} has a {bank.vectors.shape[1]}-d vector but the model reads "
                            f"{model.n_features_in_}-d embeddings; embed it with the model's encoder.")
        if fp and self.encoder_fingerprint and fp != self.encoder_fingerprint:
            raise EditError(f"Concept {self.name!r} was embedded by {self.encoder_fingerprint!r} but the model's "
                            f"concepts come from {fp!r}; use the same encoder.")
        K = len(model.class_names_)
        if isinstance(self.weights, dict):
            w = np.zeros(K, np.float32)
            for c, v in self.weights.items():
                w[class_index(model, c)] = _finite(v, f"The weight of {self.name!r} for class {c!r}")
        else:
            w = np.asarray([_finite(v, f"The weight of {self.name!r}") for v in self.weights], np.float32)
            if len(w) != K:
                raise EditError(f"AddConcept {self.name!r} got {len(w)} weights; the model has {K} classes.")
        empty = np.zeros((0, 0), np.float32)
        changes = [{"class": c, "concept": self.name, "old": None, "new": float(v)}
                   for c, v in zip(model.class_names_, w, strict=True) if v != 0]
        return Plan(np.zeros(0, int), np.zeros(0, int), empty, add=(bank, w[:, None]), changes=changes)


@dataclass
class ApplyPrior(Edit):
    """Shrink weights that contradict a class-concept prior (+1 describes the class, -1 does not).

    ``strength`` 1 zeroes contradicting weights (positive weight where the prior says -1, negative
    where it says +1); 0.5 halves them. ``prior`` (K, M) defaults to the model's concept bank prior.
    """

    strength: float = 1.0
    prior: list[list[float]] | None = None
    kind: ClassVar[str] = "apply-prior"

    def plan(self, model: Any) -> Plan:
        s = _finite(self.strength, "The prior strength")
        if not 0.0 <= s <= 1.0:
            raise EditError(f"The prior strength must be in [0, 1]; got {self.strength!r}.")
        P = self._prior(model)
        W = np.asarray(model.coef_, np.float32)
        against = (P * np.sign(W)) < 0
        new = np.where(against, W * np.float32(1.0 - s), W).astype(np.float32)
        rows, cols = np.arange(W.shape[0]), np.arange(W.shape[1])
        _check_classes_keep_concepts(model, rows, cols, new)
        return Plan(rows, cols, new, changes=_changes(model, rows, cols, new))

    def _prior(self, model: Any) -> np.ndarray:
        K, M = np.shape(model.coef_)
        if self.prior is not None:
            P = np.asarray(self.prior, np.float32)
            if P.shape != (K, M):
                raise EditError(f"The prior must have shape (classes, concepts) = ({K}, {M}); got {P.shape}.")
            return P
        bank = model.concepts_
        if bank.prior is None or bank.classes is None:
            raise EditError("The model's concept bank has no class-concept prior; pass prior=(K, M) values.")
        missing = [c for c in model.class_names_ if c not in bank.classes]
        if missing and len(bank.classes) == K:
            return bank.prior.astype(np.float32)  # classes stored as indices: same order
        if missing:
            raise EditError(f"The concept bank's prior does not cover classes {missing}; pass prior= explicitly.")
        return bank.prior[[bank.classes.index(c) for c in model.class_names_]].astype(np.float32)



# -- edits that refit on the training data (no new data) ------------------------------------------
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


class RefitEdit(Edit):
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

    def _refit(self, model: Any, data: TrainingData) -> None:
        flags, weights = self._nuisance_and_drop(model, data)
        self._refit_model(model, data, flags, weights)


def _leace_fitter() -> type:
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

        LeaceFitter = _leace_fitter()
        flags = self.training_flags(model, data, self.threshold)
        y = np.asarray(data.y).astype(str)
        keep = np.ones(len(y), bool) if self.cls is None else y != model.class_names_[class_index(model, self.cls)]
        if flags[keep].all() or not flags[keep].any():
            raise EditError(f"The model's predictor of {self.concept!r} is {'on' if flags[keep].any() else 'off'} "
                            "for every training image used to fit the eraser; nothing to erase.")
        z = flags[keep].astype(np.float32)[:, None]
        if self.class_conditional:
            z = _within_class_columns(flags[keep], y[keep])
        X = torch.as_tensor(data.X[keep], dtype=torch.float64)
        fitter = LeaceFitter(X.shape[1], z.shape[1], dtype=torch.float64)
        fitter.update(X, torch.as_tensor(z, dtype=torch.float64))
        er = fitter.eraser
        bias = er.bias if er.bias is not None else torch.zeros(X.shape[1], dtype=torch.float64)
        return (er.proj_left.float().numpy(), er.proj_right.float().numpy(), bias.float().numpy())

    def _refit(self, model: Any, data: TrainingData) -> None:
        eraser = self.fit_eraser(model, data)
        flags, weights = self._nuisance_and_drop(model, data)
        model.set_eraser(*eraser)
        self._refit_model(model, data, flags, weights)

def _within_class_columns(flags: np.ndarray, y: np.ndarray) -> np.ndarray:
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


del Edit._registry[RefitEdit.kind]  # an abstract base, not an edit of its own
EDIT_KINDS = tuple(Edit._registry)


def create_edit(kind: str, **fields: Any) -> Edit:
    """The edit of ``kind`` (one of :data:`EDIT_KINDS`) with its fields, e.g.
    ``create_edit("prune", cls="Shirt", concept="tag in the corner")``; the app and the CLI build edits here."""
    if kind not in Edit._registry:
        raise EditError(unknown_name_message("edit kind", kind, EDIT_KINDS))
    cls = Edit._registry[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise EditError(f"Edit {kind!r} takes {sorted(names)}; got unexpected {unknown}.")
    return cls(**fields)


def concept_layer_token(model: Any) -> str:
    """Fingerprint of the concept layer (what refitting edits change: predictors, eraser)."""
    h = hashlib.sha1()
    layer = {k.removeprefix("extra."): v for k, v in model.state_tensors().items() if k.startswith("extra.")}
    for k, v in sorted(layer.items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


__all__ = ["EDIT_KINDS", "create_edit", "AddConcept", "ApplyPrior", "Edit", "EditRecord", "EraseConcept", "Plan",
           "Prune", "PruneNormalize", "RefitEdit", "RefitRecord", "RefitWithout", "RemoveConcept", "ScaleWeight",
           "SetWeight", "TrainingData", "commit"]
