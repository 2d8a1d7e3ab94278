"""The machinery every edit kind shares: the :class:`Plan` of a change, the :class:`EditRecord` with
its exact undo, the :class:`Edit` base class and its registry of kinds, and :func:`commit`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cbm.bank import ConceptBank
from cbm.exceptions import EditError

F32_MAX = float(np.finfo(np.float32).max)


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
        if new.size and not (np.isfinite(new).all() and np.abs(new).max() <= F32_MAX):
            raise EditError(f"This edit would make a weight overflow float32 (|w| > {F32_MAX:.3g}) or not "
                            "finite; use a smaller value or factor.")

    def old(self, model: Any) -> np.ndarray:
        """The block of ``model.coef_`` that the plan replaces, as it is now."""
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


def finite_weight(value: float, what: str) -> float:
    """``value`` as a finite float that fits a float32 weight, or an EditError naming ``what``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EditError(f"{what} must be a number; got {value!r}.") from None
    if not np.isfinite(v):
        raise EditError(f"{what} must be a finite number; got {value!r}.")
    if abs(v) > F32_MAX:
        raise EditError(f"{what} {value!r} is too large: weights are float32 (|w| <= {F32_MAX:.3g}).")
    return v


class Edit:
    """Base class of global edits. Subclasses implement :meth:`plan`."""

    kind: ClassVar[str] = "edit"
    _registry: ClassVar[dict[str, type[Edit]]] = {}

    def __init_subclass__(cls, abstract: bool = False, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not abstract:  # an abstract base (RefitEdit) is not an edit of its own
            Edit._registry[cls.kind] = cls

    @staticmethod
    def registered_kinds() -> tuple[str, ...]:
        """The kinds of every edit class defined so far, in the order they were defined."""
        return tuple(Edit._registry)

    @staticmethod
    def registered(kind: str) -> type[Edit] | None:
        """The edit class of ``kind``, or None when no edit class has that kind."""
        return Edit._registry.get(kind)

    def plan(self, model: Any) -> Plan:
        """Resolve names and validate against ``model``; what the edit will change (nothing mutated)."""
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

    def plain(self) -> str:
        """The edit in words for people (pages, reports, version lists); :meth:`describe` is the exact record."""
        return self.describe()

    def short_label(self) -> str:
        """A short label for tables: the kind, then the options switched on, e.g.
        ``erase-concept (class-conditional, reweight)``."""
        return self.with_options(self.kind)

    def with_options(self, words: str) -> str:
        """``words`` followed by the options switched on, e.g. ``... (refit-predictors, reweight)``."""
        on = self.options_on()
        return words + (f" ({', '.join(on)})" if on else "")

    def options_on(self) -> list[str]:
        """The yes/no options switched on (off by default), as words: ``["class-conditional", "reweight"]``."""
        return [f.name.replace("_", "-") for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), bool) and getattr(self, f.name) and f.default is False]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``Edit.from_dict`` inverts it exactly)."""
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Edit:
        """The edit a :meth:`to_dict` dictionary describes."""
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


