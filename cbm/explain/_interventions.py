"""Test-time interventions and counterfactuals: set or clamp concept activations and re-predict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cbm import arrays
from cbm.explain._inputs import activations_and_residual, concept_index


@dataclass
class Intervention:
    """Predictions before and after setting or clamping concept activations."""

    activations: np.ndarray
    logits_before: np.ndarray
    logits_after: np.ndarray
    class_names: list[str]

    @property
    def pred_before(self) -> np.ndarray:
        """Predicted class index per sample (N,) before the intervention."""
        return self.logits_before.argmax(1)

    @property
    def pred_after(self) -> np.ndarray:
        """Predicted class index per sample (N,) after the intervention."""
        return self.logits_after.argmax(1)

    @property
    def changed(self) -> np.ndarray:
        """Indices of samples whose predicted class changed."""
        return np.flatnonzero(self.pred_before != self.pred_after)

    @property
    def proba_after(self) -> np.ndarray:
        """Class probabilities (N, K) after the intervention."""
        return softmax(self.logits_after)


def intervene(model: Any, activations: Any, changes: Mapping[int | str, Any], residual: Any = None,
              rows: Any = None) -> Intervention:
    """Set or clamp concept activations and re-predict (test-time intervention, as in CBM/CEM).

    Parameters
    ----------
    changes : mapping concept -> value
        A number sets the activation (``0`` switches a concept off); a pair ``(low, high)`` clamps
        it (``None`` for an open end).
    rows : indices or boolean mask, optional
        Samples to intervene on (default: all); the others keep their activations.
    """
    A, R = activations_and_residual(model, None, np.atleast_2d(np.asarray(activations, np.float32)), residual)
    new = A.copy()
    sel = np.arange(len(A)) if rows is None else np.asarray(rows)
    for concept, value in changes.items():
        j = concept_index(model, concept)
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ValueError(f"Clamp bounds for {concept!r} must be (low, high); got {value!r}.")
            lo, hi = (None if v is None else float(v) for v in value)
            new[sel, j] = np.clip(new[sel, j], lo, hi)
        else:
            v = float(value)
            if not np.isfinite(v):
                raise ValueError(f"Activation value for {concept!r} must be finite; got {value!r}.")
            new[sel, j] = v
    return Intervention(new, model.logits_from_activations(A, R), model.logits_from_activations(new, R),
                        model.class_names_)


def counterfactual(model: Any, activations: Any, concepts: Sequence[int | str] | Mapping[int | str, float],
                   residual: Any = None) -> np.ndarray:
    """Class probabilities if ``concepts`` were switched off (or set to the mapped values).

    Returns an array shaped like the input: (K,) for one sample (M,), (N, K) for a batch.
    """
    changes = dict(concepts) if isinstance(concepts, Mapping) else {c: 0.0 for c in concepts}
    single = np.ndim(activations) == 1
    out = intervene(model, activations, changes, residual=residual).proba_after
    return out[0] if single else out


def counterfactual_table(model: Any, activations: Any, residual: Any = None) -> pd.DataFrame:
    """For one sample: what the prediction becomes when each concept alone is switched off.

    Rows are sorted so that concepts whose removal flips the prediction (then lowers the margin
    most) come first.
    """
    A, R = activations_and_residual(model, None, np.atleast_2d(np.asarray(activations, np.float32))[:1], residual)
    z = model.logits_from_activations(A, R)[0]
    k = int(z.argmax())
    # switching concept j off removes A[j] * coef_[:, j] from every class score: all M at once
    Z = z[None, :] - (A[0][:, None] * model.coef_.T)  # (M, K)
    new = Z.argmax(1)
    names = model.class_names_
    df = pd.DataFrame({
        "concept": model.concept_names_, "activation": A[0],
        "new_prediction": [names[i] for i in new], "flips": new != k,
        "score_change": Z[:, k] - z[k],
    })
    return df.sort_values(["flips", "score_change"], ascending=[False, True]).reset_index(drop=True)



def intervention_effects(model: Any, activations: Any, changes: Mapping[int | str, Any],
                         residual: Any = None) -> pd.DataFrame:
    """For one sample: how each concept change moves every class score, even if the prediction holds.

    One row per (changed concept, class) with a non-zero effect: ``concept, before, after, class,
    score_change`` (``(after - before) * coef_[class, concept]``), largest |score_change| first.
    """
    A = np.atleast_2d(np.asarray(activations, np.float32))[:1]
    it = intervene(model, A, changes, residual=residual)
    rows = []
    for concept in changes:
        j = concept_index(model, concept)
        before, after = float(A[0, j]), float(it.activations[0, j])
        for k, cls in enumerate(model.class_names_):
            d = (after - before) * float(model.coef_[k, j])
            if d != 0:
                rows.append((model.concept_names_[j], before, after, cls, d))
    df = pd.DataFrame(rows, columns=["concept", "before", "after", "class", "score_change"])
    return df.reindex(df["score_change"].abs().sort_values(ascending=False, kind="stable").index
                      ).reset_index(drop=True)



def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits as float32 (:func:`cbm.arrays.softmax`, for display and CSVs)."""
    return arrays.softmax(z, np.float32)
