"""Contrastive explanations ("why A and not B") within the feasible range of each concept, and
where an activation stands among reference activations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cbm.explain._inputs import activations_and_residual, class_index


def concept_bounds(model: Any, reference: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Feasible (low, high) activation of each concept, two arrays of shape (M,).

    The model's ``activation_range`` when its activations are bounded by construction (KnoBo's
    sigmoid probabilities and CCT's attention lie in [0, 1]); else the range of ``reference``
    (activations on training images, shape (N, M)); else unbounded, so without training
    activations no range is enforced on an unbounded model.
    """
    m = len(model.concept_names_)
    bounds = getattr(model, "activation_range", None)
    if bounds is not None:
        return np.full(m, float(bounds[0])), np.full(m, float(bounds[1]))
    if reference is not None:
        ref = np.asarray(reference, np.float64)
        if ref.ndim != 2 or ref.shape[1] != m:
            raise ValueError(f"reference must be training activations of shape (n_samples, {m}); got {ref.shape}.")
        if len(ref):
            return ref.min(0), ref.max(0)
    return np.full(m, -np.inf), np.full(m, np.inf)


@dataclass
class Contrast:
    """Why one sample scores class ``a`` above (or below) class ``b``, concept by concept.

    ``margin = logit[a] - logit[b]`` splits exactly into ``sum(table.contribution)``, the intercept
    difference and (hybrid models) the residual difference. ``flips`` lists, per concept, the
    smallest change of its activation that makes ``b`` score at least as high as ``a``, only where
    that activation is feasible (:func:`concept_bounds`); ``new_prediction`` is the class that then
    scores highest, which can be a third class.
    """

    a: str
    b: str
    margin: float
    table: pd.DataFrame  # concept, activation, weight_a, weight_b, contribution (largest |.| first)
    intercept: float
    residual: float | None
    flips: pd.DataFrame  # concept, activation, needed, change, new_prediction (smallest |change| first)

    def summary(self, top: int = 3) -> str:
        """Plain words: why ``a`` and not ``b``, and the smallest single-concept change that flips it."""
        if self.margin < 0:
            head = f"{self.b} scores higher than {self.a} by {-self.margin:.2f}."
        else:
            head = f"{self.a} and not {self.b}: {self.a} scores higher by {self.margin:.2f}."
        pro = self.table[self.table["contribution"] > 0].head(top)
        con = self.table[self.table["contribution"] < 0].head(top)
        lines = [head]
        if len(pro):
            lines.append(f"For {self.a} over {self.b}: " + ", ".join(
                f"{r.concept} ({r.contribution:+.2f})" for r in pro.itertuples()) + ".")
        if len(con):
            lines.append(f"For {self.b} over {self.a}: " + ", ".join(
                f"{r.concept} ({r.contribution:+.2f})" for r in con.itertuples()) + ".")
        if self.margin > 0 and len(self.flips):
            f = self.flips.iloc[0]
            then = (f"the prediction would then be {f.new_prediction}" if f.new_prediction in (self.a, self.b)
                    else f"but {f.new_prediction} would then score highest, so the prediction would become "
                         f"{f.new_prediction}, neither {self.a} nor {self.b}")
            lines.append(f"Smallest single change that makes {self.b} score as high: {f.concept} from "
                         f"{f.activation:.2f} to {f.needed:.2f}; {then}.")
        elif self.margin > 0:
            lines.append(f"No single concept change within its possible range makes {self.b} score as high "
                         f"as {self.a}.")
        return "\n".join(lines)


def contrast(model: Any, activations: Any, a: int | str | None = None, b: int | str | None = None, *,
             residual: Any = None, true: int | str | None = None, reference: Any = None) -> Contrast:
    """"Why ``a`` and not ``b``" for one sample (activations of shape (M,)).

    Defaults: ``a`` is the predicted class; ``b`` is the true class when ``true`` is given and
    differs from ``a``, else the runner-up. Each concept contributes
    ``(coef_[a, j] - coef_[b, j]) * A[j]`` to the margin ``logit[a] - logit[b]``; for each concept
    with a non-zero weight difference whose closing activation is feasible, ``flips`` gives that
    activation. Feasible means within :func:`concept_bounds`: the model's ``activation_range``
    (e.g. [0, 1] for probabilities), else the range of ``reference`` (training activations, (N, M));
    with neither, no bound is applied.
    """
    A, R = activations_and_residual(model, None, np.atleast_2d(np.asarray(activations, np.float32))[:1],
                                    None if residual is None else np.atleast_2d(residual))
    z = model.logits_from_activations(A, R)[0]
    ka = int(z.argmax()) if a is None else class_index(model, a)
    if b is None:
        kt = None if true is None else class_index(model, true)
        if kt is not None and kt != ka:
            kb = kt
        else:
            other = z.copy()
            other[ka] = -np.inf
            kb = int(other.argmax()) if len(z) > 1 else ka
    else:
        kb = class_index(model, b)
    W = np.asarray(model.coef_, np.float64)
    dw = W[ka] - W[kb]
    act = A[0].astype(np.float64)
    contrib = dw * act
    margin = float(z[ka] - z[kb])
    names = model.concept_names_
    table = pd.DataFrame({"concept": names, "activation": act, "weight_a": W[ka], "weight_b": W[kb],
                          "contribution": contrib})
    table = table.reindex(table["contribution"].abs().sort_values(ascending=False, kind="stable").index)
    lo, hi = concept_bounds(model, reference)
    nz = np.flatnonzero(np.abs(dw) > 1e-12)
    needed = act[nz] - margin / dw[nz]
    tol = 1e-6 * np.maximum(1.0, np.abs(needed))
    ok = (needed >= lo[nz] - tol) & (needed <= hi[nz] + tol)  # a change the concept cannot reach is no flip
    nz, needed = nz[ok], np.clip(needed[ok], lo[nz[ok]], hi[nz[ok]])
    Z = z[None, :].astype(np.float64) + (needed - act[nz])[:, None] * W[:, nz].T  # (len(nz), K)
    if ka != kb:
        Z[:, ka] = -np.inf  # b now ties a, so a loses: the new prediction is b or a third class above both
    flips = pd.DataFrame({"concept": [names[j] for j in nz], "activation": act[nz], "needed": needed,
                          "change": needed - act[nz],
                          "new_prediction": [model.class_names_[int(k)] for k in Z.argmax(1)]})
    flips = flips.reindex(flips["change"].abs().sort_values(kind="stable").index).reset_index(drop=True)
    res = None if R is None else float(R[0, ka] - R[0, kb])
    inter = float(np.asarray(model.intercept_)[ka] - np.asarray(model.intercept_)[kb])
    return Contrast(model.class_names_[ka], model.class_names_[kb], margin, table.reset_index(drop=True),
                    inter, res, flips)



def concept_percentile(reference: Any, value: float) -> float:
    """Percentage (0-100) of the ``reference`` activations of one concept that are below ``value``.

    Ties count half, so the median of the reference gets about 50.
    """
    ref = np.asarray(reference, np.float64).ravel()
    if not len(ref):
        raise ValueError("The reference activations are empty; pass the concept's activations on "
                         "training or validation images.")
    return float(100.0 * ((ref < value).sum() + 0.5 * (ref == value).sum()) / len(ref))
