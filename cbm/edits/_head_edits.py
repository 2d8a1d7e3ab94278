"""Edits of the linear head alone: prune, prune-and-normalise, set or scale a weight, remove a
concept, add one given as a vector, shrink weights against a class-concept prior."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cbm.bank import ConceptBank, Provenance
from cbm.edits._base import Edit, Plan, finite_weight
from cbm.exceptions import EditError
from cbm.explain import class_index, concept_index


def _weight_changes(model: Any, rows: np.ndarray, cols: np.ndarray, new: np.ndarray) -> list[dict[str, Any]]:
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


def _checked_plan(model: Any, rows: np.ndarray, cols: np.ndarray, new: np.ndarray,
                  remove: int | None = None) -> Plan:
    """The plan writing ``new`` into the block (rows, cols) of ``coef_`` (then dropping column
    ``remove``), refused when it would leave a class with no concept."""
    _check_classes_keep_concepts(model, rows, cols, new, drop=remove)
    return Plan(rows, cols, new, remove=remove, changes=_weight_changes(model, rows, cols, new))


def _weight_plan(model: Any, cls: int | str | None, concept: int | str, fn) -> Plan:
    """Plan for edits of one column (one class, or every class when ``cls`` is None)."""
    j = concept_index(model, concept)
    rows = np.arange(len(model.class_names_)) if cls is None else np.array([class_index(model, cls)])
    cols = np.array([j])
    new = fn(np.asarray(model.coef_)[np.ix_(rows, cols)].astype(np.float32))
    return _checked_plan(model, rows, cols, new)


def for_class(cls: int | str | None) -> str:
    """``for Shirt``, or ``for every class`` when an edit names none."""
    return "for every class" if cls is None else f"for {cls}"


@dataclass
class Prune(Edit):
    """Zero the weight of ``concept`` for class ``cls`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    kind: ClassVar[str] = "prune"

    def plain(self) -> str:
        return f"prune “{self.concept}” {for_class(self.cls)} (its weight set to 0)"

    def plan(self, model: Any) -> Plan:
        return _weight_plan(model, self.cls, self.concept, np.zeros_like)


@dataclass
class PruneNormalize(Edit):
    """Zero ``W[cls, concept]`` and rescale the class row to keep its L1 norm (PCBM's model editing)."""

    cls: int | str
    concept: int | str
    kind: ClassVar[str] = "prune-normalize"

    def plain(self) -> str:
        return f"prune “{self.concept}” {for_class(self.cls)} and rescale the class's other weights"

    def plan(self, model: Any) -> Plan:
        k, j = class_index(model, self.cls), concept_index(model, self.concept)
        row = np.asarray(model.coef_[k], np.float32).copy()
        norm = np.abs(row).sum()
        row[j] = 0.0
        rest = np.abs(row).sum()
        if rest > 0:
            row *= np.float32(norm / rest)
        rows, cols = np.array([k]), np.arange(len(row))
        return _checked_plan(model, rows, cols, row[None])


@dataclass
class SetWeight(Edit):
    """Set ``W[cls, concept] = value`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    value: float
    kind: ClassVar[str] = "set-weight"

    def plain(self) -> str:
        return f"set the weight of “{self.concept}” {for_class(self.cls)} to {self.value:g}"

    def plan(self, model: Any) -> Plan:
        v = finite_weight(self.value, "The new weight")
        return _weight_plan(model, self.cls, self.concept, lambda w: np.full_like(w, v))


@dataclass
class ScaleWeight(Edit):
    """Multiply ``W[cls, concept]`` by ``factor`` (every class when ``cls`` is None)."""

    cls: int | str | None
    concept: int | str
    factor: float
    kind: ClassVar[str] = "scale-weight"

    def plain(self) -> str:
        return f"scale the weight of “{self.concept}” {for_class(self.cls)} by {self.factor:g}"

    def plan(self, model: Any) -> Plan:
        f = finite_weight(self.factor, "The scale factor")
        with np.errstate(over="ignore"):  # an overflow gives inf, which Plan refuses with a clear message
            return _weight_plan(model, self.cls, self.concept, lambda w: w * np.float32(f))


@dataclass
class RemoveConcept(Edit):
    """Remove ``concept`` from the model entirely (its column and its activation)."""

    concept: int | str
    kind: ClassVar[str] = "remove-concept"

    def plain(self) -> str:
        return f"remove “{self.concept}” from the model (every class)"

    def plan(self, model: Any) -> Plan:
        j = concept_index(model, self.concept)
        if len(model.concept_names_) == 1:
            raise EditError(f"Cannot remove {model.concept_names_[0]!r}: it is the model's only concept.")
        rows, cols = np.arange(len(model.class_names_)), np.array([j])
        new = np.zeros((len(rows), 1), np.float32)
        return _checked_plan(model, rows, cols, new, remove=j)


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

    def plain(self) -> str:
        d = self.detail or {}
        origin = (f"a CAV fitted on {d['n_positive']} example(s) that show it and {d['n_negative']} that don't"
                  if "n_positive" in d else f"the text “{self.text}”" if self.text else f"a {self.source} vector")
        pairs = self.weights.items() if isinstance(self.weights, dict) else enumerate(self.weights)
        weights = ", ".join(f"{v:+.2f} for {c}" for c, v in pairs if v) or "no class weight"
        return f"add the concept “{self.name}” ({origin}) with weight {weights}"

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
                w[class_index(model, c)] = finite_weight(v, f"The weight of {self.name!r} for class {c!r}")
        else:
            w = np.asarray([finite_weight(v, f"The weight of {self.name!r}") for v in self.weights], np.float32)
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

    def plain(self) -> str:
        how = "zero" if self.strength >= 1 else f"shrink by {self.strength:.0%}"
        return f"{how} the weights that contradict the class-concept prior"

    def plan(self, model: Any) -> Plan:
        s = finite_weight(self.strength, "The prior strength")
        if not 0.0 <= s <= 1.0:
            raise EditError(f"The prior strength must be in [0, 1]; got {self.strength!r}.")
        P = self._prior(model)
        W = np.asarray(model.coef_, np.float32)
        against = (P * np.sign(W)) < 0
        new = np.where(against, W * np.float32(1.0 - s), W).astype(np.float32)
        rows, cols = np.arange(W.shape[0]), np.arange(W.shape[1])
        return _checked_plan(model, rows, cols, new)

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
