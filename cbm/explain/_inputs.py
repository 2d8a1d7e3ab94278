"""What every explanation takes in: class and concept names resolved to indices, the activations
and residual logits of a batch, and the class explained per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cbm.exceptions import EditError, unknown_name_message

Target = int | str | Sequence[int] | np.ndarray | None


def _index(names: list[str], key: int | str, what: str) -> int:
    """Position of ``key`` (a name or an index) in ``names``; a miss names the closest ``what``s."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        if not 0 <= int(key) < len(names):
            plural = f"{what}es" if what.endswith("s") else f"{what}s"
            raise EditError(f"{what.capitalize()} index {int(key)} is out of range; the model has "
                            f"{len(names)} {plural}.")
        return int(key)
    if str(key) not in names:
        raise EditError(unknown_name_message(what, str(key), names))
    return names.index(str(key))


def class_index(model: Any, cls: int | str) -> int:
    """Row of class ``cls`` (a name or an index) in ``model.coef_``; a miss names the closest classes."""
    return _index(model.class_names_, cls, "class")


def concept_index(model: Any, concept: int | str) -> int:
    """Column of concept ``concept`` (a name or an index); a miss names the closest concepts."""
    return _index(model.concept_names_, concept, "concept")


def activations_and_residual(model: Any, X: Any, activations: Any, residual: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Activations (N, M) and residual logits (N, K) or None, from X or from given activations."""
    if activations is None:
        if X is None:
            raise ValueError("Pass X (embeddings) or activations (model.transform(X)).")
        A = model.transform(X)
        if residual is None and model.hybrid:
            residual = model.residual_logits(X)
    else:
        A = np.asarray(activations, np.float32)
    if A.ndim != 2 or A.shape[1] != len(model.concept_names_):
        raise ValueError(
            f"activations must have shape (n_samples, {len(model.concept_names_)}) to match the model's "
            f"concepts; got {A.shape}. Recompute them with model.transform(X) after edits."
        )
    R = None if residual is None else np.asarray(residual, np.float32).reshape(len(A), -1)
    return A, R


def target_classes(model: Any, target: Target, logits: np.ndarray) -> np.ndarray:
    """The class explained per sample (N,): ``target`` resolved, or the predicted class when None."""
    if target is None:
        return logits.argmax(1)
    if isinstance(target, int | str | np.integer):
        return np.full(len(logits), class_index(model, target))
    t = np.asarray(target)
    return np.array([class_index(model, c) for c in t.tolist()], dtype=np.int64)
