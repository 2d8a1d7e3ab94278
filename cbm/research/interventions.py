"""Intervention curves: accuracy as k concepts per image are set to their annotated values, k = 0...M.

A test-time intervention (Koh et al., 2020, "Concept Bottleneck Models", ICML) replaces a predicted
concept activation by its true value and re-predicts. Which concepts to ask about first is a
*policy*; each policy gives every image an order of its concepts, and the curve is the accuracy
after intervening on the first k of them:

``random``
    A random order (seeded): the baseline.
``uncertainty``
    The concepts whose activation is closest to the concept's decision threshold first
    (Shin et al., 2023, "A Closer Look at the Intervention Procedure of Concept Bottleneck Models").
``contribution``
    The largest ``|coef_[predicted class, j] * A[n, j]|`` first: the concepts the prediction leans on.
``coop``
    Cost-aware, after CooP (Chauhan et al., 2023, "Interactive Concept Bottleneck Models", AAAI):
    concept uncertainty x expected change of the predicted class's score / the cost of asking
    (CUB: mean annotation time). CooP combines the same three terms as a weighted sum tuned on
    validation data; the product here needs no tuning.

"True values" in the model's activation scale are the 5th and 95th percentiles of each concept's
activations (Koh et al. set sigmoid-free concepts the same way); soft labels interpolate. Every
model's head is linear in the activations, so each step adds ``delta * coef_[:, j]`` to the
logits: one vectorised pass over all images per k (``_curve_per_sample`` is the per-image
reference used as the test oracle and benchmark baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

POLICIES = ("random", "uncertainty", "contribution", "coop")


def intervention_values(A: np.ndarray, truth: np.ndarray | None = None, *, method: str = "percentile",
                        low: float = 5, high: float = 95) -> tuple[np.ndarray, np.ndarray]:
    """Per-concept activation values for "absent" and "present".

    ``method="percentile"``: percentiles ``low``/``high`` of ``A`` (Koh et al.). ``method="mean"``:
    the mean activation of the images annotated absent / present in ``truth`` (the values the head
    saw in training for such images; percentiles where a concept lacks one of the labels).
    """
    A = np.asarray(A, np.float32)
    off, on = np.percentile(A, [low, high], axis=0).astype(np.float32)
    if method == "mean":
        if truth is None:
            raise ValueError("intervention_values(method='mean') needs the annotations (truth=).")
        T = np.asarray(truth, np.float32)
        for j in range(A.shape[1]):
            ok = np.isfinite(T[:, j])
            pos, neg = ok & (T[:, j] >= 0.5), ok & (T[:, j] < 0.5)
            if pos.any() and neg.any():
                off[j], on[j] = A[neg, j].mean(), A[pos, j].mean()
    elif method != "percentile":
        raise ValueError(f"intervention values method must be 'percentile' or 'mean'; got {method!r}.")
    flat = on == off  # a constant concept: make the step visible (an inverted one keeps its values)
    on[flat] = off[flat] + np.maximum(np.abs(off[flat]), 1.0) * 1e-3
    return off, on


def intervention_order(policy: str, A: np.ndarray, coef: np.ndarray, pred: np.ndarray,
                       truth: np.ndarray, off: np.ndarray, on: np.ndarray, *,
                       thresholds: np.ndarray | None = None, cost: np.ndarray | None = None,
                       random_state: int | None = 0) -> np.ndarray:
    """Concept order (N, M) per image for ``policy``; unannotated concepts (NaN in ``truth``) come last.

    Ties are broken by concept position (a stable sort), so equal keys give the same order on every run
    and platform."""
    N, M = A.shape
    if policy not in POLICIES:
        from cbm.exceptions import unknown_name_message

        raise ValueError(unknown_name_message("intervention policy", str(policy), POLICIES))
    if policy == "random":
        key = np.random.default_rng(random_state).random((N, M), dtype=np.float32)
    else:
        span = np.where(on == off, 1e-12, on - off)
        t = (off + on) / 2 if thresholds is None else np.asarray(thresholds, np.float32)
        # p: where the activation sits between "absent" and "present"; u: 1 at the threshold, 0 far off
        p = np.clip((A - off) / span, 0.0, 1.0)
        u = 1.0 - np.clip(np.abs(A - t) / (np.abs(span) / 2), 0.0, 1.0)
        w = np.abs(np.asarray(coef, np.float32)[pred])  # (N, M) weights of the predicted class
        if policy == "uncertainty":
            key = -u
        elif policy == "contribution":
            key = -np.abs(w * A)
        else:
            expected_change = w * (p * np.abs(on - A) + (1 - p) * np.abs(A - off))
            c = np.ones(M, np.float32) if cost is None else np.asarray(cost, np.float32)
            key = -(u + 1e-3) * expected_change / c
    key = np.where(np.isnan(truth), np.float32(np.inf), key.astype(np.float32, copy=False))
    return np.argsort(key, axis=1, kind="stable")


@dataclass
class InterventionCurves:
    """Accuracy after intervening on k concepts per image, for each policy.

    Attributes
    ----------
    k : ndarray of shape (L,)
        Concepts intervened on per image: 0, 1, ..., max annotated concepts per image.
    accuracy : dict policy -> ndarray (L,)
    cost : dict policy -> ndarray (L,)
        Mean cost per image of the first k concepts asked (k itself with unit costs).
    n_samples, n_concepts : int
        Images and model concepts; ``n_annotated`` of the concepts have annotations.
    """

    k: np.ndarray
    accuracy: dict[str, np.ndarray]
    cost: dict[str, np.ndarray]
    n_samples: int
    n_concepts: int
    n_annotated: int
    notes: list[str] = field(default_factory=list)

    def area(self, policy: str) -> float:
        """Mean accuracy over k (the normalised area under the curve): higher = fixes errors sooner."""
        return float(np.mean(self.accuracy[policy]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: k, per-policy accuracy and cost lists, and areas."""
        return {"k": self.k.tolist(), "n_samples": self.n_samples, "n_concepts": self.n_concepts,
                "n_annotated": self.n_annotated,
                "policies": {p: {"accuracy": [round(float(v), 6) for v in a],
                                 "cost": [round(float(v), 6) for v in self.cost[p]],
                                 "area": round(self.area(p), 6)} for p, a in self.accuracy.items()},
                "notes": list(self.notes)}

    def summary(self) -> str:
        """A few lines: accuracy at k = 0, a few steps and M per policy."""
        steps = sorted({0, 1, 2, 5, 10, int(self.k[-1])} & set(self.k.tolist()))
        head = "policy        " + "".join(f"k={s:<6d}" for s in steps) + " area"
        lines = [f"intervention curves ({self.n_samples} images, {self.n_annotated}/{self.n_concepts} "
                 "concepts annotated):", head]
        for p, acc in self.accuracy.items():
            lines.append(f"{p:<14s}" + "".join(f"{acc[s]:<8.3f}" for s in steps) + f" {self.area(p):.3f}")
        return "\n".join(lines + self.notes)

    def figure(self, title: str = "Intervention curves") -> Any:
        """Plotly line chart: accuracy against k, one line per policy."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for (p, acc), colour in zip(self.accuracy.items(), _COLOURS, strict=False):
            fig.add_trace(go.Scatter(x=self.k, y=acc, mode="lines", name=p, line=dict(color=colour, width=2.5),
                                     hovertemplate=f"{p}: k=%{{x}}, accuracy %{{y:.1%}}<extra></extra>"))
        fig.update_layout(title=title, xaxis_title="concepts set to their true value per image (k)",
                          yaxis_title="accuracy", yaxis_tickformat=".0%", template="plotly_white",
                          margin=dict(l=10, r=10, t=40, b=10), height=380)
        return fig

    def svg(self, title: str = "Intervention curves") -> str:
        """The same chart as a dependency-free SVG string (for READMEs and results folders)."""
        from cbm._svg import line_chart

        return line_chart({p: (self.k, a) for p, a in self.accuracy.items()}, title=title,
                          xlabel="concepts intervened on per image (k)", ylabel="accuracy",
                          colours=_COLOURS)


_COLOURS = ("#999999", "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9")


def intervention_curves(model: Any, X: Any = None, y: Any = None, truth: Any = None, *,
                        activations: Any = None, residual: Any = None,
                        policies: Sequence[str] = ("random", "uncertainty", "contribution", "coop"),
                        cost: Any = None, values: tuple[np.ndarray, np.ndarray] | None = None,
                        thresholds: Any = None, max_k: int | None = None, value_method: str = "percentile",
                        random_state: int | None = 0) -> InterventionCurves:
    """Intervention curves of a fitted concept model.

    Parameters
    ----------
    model : fitted BaseConceptModel
        Any concept model (uses ``transform``, ``residual_logits`` and its linear head).
    X : array (N, d), optional
        Embeddings; or pass ``activations`` (and ``residual`` for hybrid models).
    y : array (N,)
        True classes (names as in ``model.classes_``).
    truth : array (N, M) or ConceptAnnotations
        True concept values in [0, 1] in the model's concept order, NaN where unknown; a
        :class:`~cbm.research.annotations.ConceptAnnotations` is aligned by concept name (rows must already
        follow the samples: use ``ann.for_ids(ids)``).
    policies : sequence of str
        Any of :data:`POLICIES`.
    cost : array (M,), optional
        Cost of asking each concept (default: the annotations' cost, else 1).
    values : (off, on), optional
        Activation values for absent/present (default: :func:`intervention_values` of the
        activations with ``value_method``: "percentile" (5th/95th) or "mean" (of annotated images)).
    thresholds : array (M,), optional
        Per-concept decision thresholds for the uncertainty (default: midway between off and on).
    max_k : int, optional
        Stop after this many concepts per image.

    Returns
    -------
    InterventionCurves
    """
    from cbm.explain import activations_and_residual

    A, R = activations_and_residual(model, X, activations, residual)
    names = model.concept_names_
    if truth is None:
        raise ValueError("intervention_curves needs the true concept values (truth=): an (N, M) array or "
                         "ConceptAnnotations.")
    if hasattr(truth, "matrix_for"):
        if cost is None:
            cost = truth.cost_for(names)
        truth = truth.matrix_for(names)
    T = np.asarray(truth, np.float32)
    if T.shape != A.shape:
        raise ValueError(f"truth must have shape (n_samples, n_concepts) = {A.shape}; got {T.shape}.")
    y = np.asarray(y)
    if len(y) != len(A):
        raise ValueError(f"y has {len(y)} labels but there are {len(A)} samples.")
    y_idx = _class_positions(model, y)
    if values is None:
        off, on = intervention_values(A, T, method=value_method)
    else:
        off, on = (np.asarray(v, np.float32) for v in values)
    c = np.ones(A.shape[1], np.float32) if cost is None else np.asarray(cost, np.float32)
    coef = np.asarray(model.coef_, np.float32)
    Z0 = model.logits_from_activations(A, R)
    pred = Z0.argmax(1)
    annotated = np.isfinite(T)
    n_max = int(annotated.sum(1).max()) if len(T) else 0
    kmax = n_max if max_k is None else min(int(max_k), n_max)
    target = off + np.nan_to_num(T) * (on - off)
    delta = np.where(annotated, target - A, 0.0).astype(np.float32)
    acc, costs = {}, {}
    for policy in policies:
        order = intervention_order(policy, A, coef, pred, T, off, on, thresholds=thresholds, cost=c,
                                   random_state=random_state)
        acc[policy], costs[policy] = _curve(Z0, delta, coef, order, y_idx, kmax, c, annotated)
    notes = [] if annotated.any() else ["no concept of the model has annotations: the curves are flat"]
    return InterventionCurves(np.arange(kmax + 1), acc, costs, len(A), A.shape[1],
                              int(annotated.any(0).sum()), notes)


def _curve(Z0: np.ndarray, delta: np.ndarray, coef: np.ndarray, order: np.ndarray, y_idx: np.ndarray,
           kmax: int, cost: np.ndarray, annotated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cost for k = 0..kmax: one (K, N) update per k over all images.

    Logits are kept class-major (K, N) so each step is a few contiguous passes; an image is correct
    when its true class has the first maximal logit, as ``argmax`` decides.
    """
    N, K = Z0.shape
    acc, spent = np.full(kmax + 1, np.nan), np.zeros(kmax + 1)
    if not N:
        return acc, spent
    Zt = np.ascontiguousarray(np.asarray(Z0, np.float32).T)
    W = np.ascontiguousarray(coef, np.float32)  # (K, M)
    J = np.ascontiguousarray(order[:, :kmax].T)  # (kmax, N): the concept each image is asked k-th
    D = np.ascontiguousarray(np.take_along_axis(delta, order[:, :kmax], 1).T)  # its activation change
    paid = np.where(np.take_along_axis(annotated, order[:, :kmax], 1), cost[order[:, :kmax]], 0.0)
    spent[1:] = np.cumsum(paid.sum(0)) / N
    y, cols = np.asarray(y_idx, np.int64), np.arange(N)
    before = np.arange(K)[:, None] < y[None, :]  # classes that win ties against the true class

    def n_correct() -> int:
        zy = Zt[y, cols]
        return int(np.where(before, Zt < zy, Zt <= zy).all(0).sum())

    correct = np.empty(kmax + 1)
    correct[0] = n_correct()
    for k in range(1, kmax + 1):
        Zt += D[k - 1] * np.take(W, J[k - 1], axis=1)
        correct[k] = n_correct()
    acc[:] = correct / N
    return acc, spent


def _curve_per_sample(model: Any, A: np.ndarray, R: np.ndarray | None, y_idx: np.ndarray, truth: np.ndarray,
                      order: np.ndarray, off: np.ndarray, on: np.ndarray, kmax: int) -> np.ndarray:
    """Reference: the same curve, one image and one k at a time through ``logits_from_activations``."""
    correct = np.zeros(kmax + 1)
    for n in range(len(A)):
        for k in range(kmax + 1):
            a = A[n].copy()
            for j in order[n, :k]:
                if np.isfinite(truth[n, j]):
                    a[j] = off[j] + truth[n, j] * (on[j] - off[j])
            z = model.logits_from_activations(a[None], None if R is None else R[n:n + 1])
            correct[k] += int(z.argmax() == y_idx[n])
    return correct / len(A)


def _class_positions(model: Any, y: np.ndarray) -> np.ndarray:
    classes = [str(c) for c in model.classes_]
    pos = {c: i for i, c in enumerate(classes)}
    out = np.asarray([pos.get(str(v), -1) for v in y.tolist()], np.int64)
    if (out < 0).any():
        from cbm.exceptions import unknown_name_message

        raise ValueError(unknown_name_message("class", str(y[out < 0][0]), classes))
    return out


__all__ = ["POLICIES", "InterventionCurves", "intervention_curves", "intervention_order", "intervention_values"]
