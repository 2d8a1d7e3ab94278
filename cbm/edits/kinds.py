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
from typing import Any

from cbm.edits._base import Edit, EditRecord, Plan, commit
from cbm.edits._head_edits import (
    AddConcept,
    ApplyPrior,
    Prune,
    PruneNormalize,
    RemoveConcept,
    ScaleWeight,
    SetWeight,
)
from cbm.edits._refit_edits import EraseConcept, RefitEdit, RefitRecord, RefitWithout, TrainingData
from cbm.edits.source import NeutraliseAtSource
from cbm.exceptions import EditError, unknown_name_message

#: every edit kind, in the order the classes were defined (the source repair's included)
EDIT_KINDS = Edit.registered_kinds()


def create_edit(kind: str, **fields: Any) -> Edit:
    """The edit of ``kind`` (one of :data:`EDIT_KINDS`) with its fields, e.g.
    ``create_edit("prune", cls="Shirt", concept="tag in the corner")``; the app and the CLI build edits here."""
    cls = Edit.registered(kind)
    if cls is None:
        raise EditError(unknown_name_message("edit kind", kind, EDIT_KINDS))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise EditError(f"Edit {kind!r} takes {sorted(names)}; got unexpected {unknown}.")
    return cls(**fields)


__all__ = ["EDIT_KINDS", "create_edit", "AddConcept", "ApplyPrior", "Edit", "EditRecord", "EraseConcept",
           "NeutraliseAtSource", "Plan", "Prune", "PruneNormalize", "RefitEdit", "RefitRecord", "RefitWithout", "RemoveConcept", "ScaleWeight",
           "SetWeight", "TrainingData", "commit"]
