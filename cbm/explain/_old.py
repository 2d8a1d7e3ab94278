"""Explanations and test-time interventions for any concept bottleneck model.

Every method ends in a linear head on concept activations (:class:`~cbm.models.BaseConceptModel`),
so a class score splits exactly into one part per concept plus the intercept (and, for hybrid
models such as PCBM-h, a residual part that no concept explains)::

    logit[n, k] = sum_j coef_[k, j] * A[n, j] + intercept_[k] + residual[n, k]

All functions are pure and vectorised over samples; they take activations ``A = model.transform(X)``
(computed once, e.g. by the app) or raw embeddings ``X``, and return numpy arrays, pandas
DataFrames or small dataclasses that the CLI and the app print or plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbm import arrays
from cbm.encoders.rebuild import encoder_for
from cbm.exceptions import EditError, unknown_name_message

Target = int | str | Sequence[int] | np.ndarray | None


# -- resolving names -----------------------------------------------------------------------------
def class_index(model: Any, cls: int | str) -> int:
    """Row of class ``cls`` (a name or an index) in ``model.coef_``; a miss names the closest classes."""
    names = model.class_names_
    if isinstance(cls, int | np.integer) and not isinstance(cls, bool):
        if not 0 <= int(cls) < len(names):
            raise EditError(f"Class index {int(cls)} is out of range; the model has {len(names)} classes.")
        return int(cls)
    if str(cls) not in names:
        raise EditError(unknown_name_message("class", str(cls), names))
    return names.index(str(cls))


def concept_index(model: Any, concept: int | str) -> int:
    """Column of concept ``concept`` (a name or an index); a miss names the closest concepts."""
    names = model.concept_names_
    if isinstance(concept, int | np.integer) and not isinstance(concept, bool):
        if not 0 <= int(concept) < len(names):
            raise EditError(f"Concept index {int(concept)} is out of range; the model has {len(names)} concepts.")
        return int(concept)
    if str(concept) not in names:
        raise EditError(unknown_name_message("concept", str(concept), names))
    return names.index(str(concept))


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


def _targets(model: Any, target: Target, logits: np.ndarray) -> np.ndarray:
    if target is None:
        return logits.argmax(1)
    if isinstance(target, int | str | np.integer):
        return np.full(len(logits), class_index(model, target))
    t = np.asarray(target)
    return np.array([class_index(model, c) for c in t.tolist()], dtype=np.int64)


# -- per-prediction explanations -----------------------------------------------------------------
def contributions(model: Any, activations: Any, residual: Any = None, target: Target = None
                  ) -> tuple[np.ndarray, Any]:
    """Each concept's contribution ``coef_[k, j] * A[n, j]`` to class ``k``'s score.

    Parameters
    ----------
    activations : array of shape (M,) or (N, M)
        One sample or a batch.
    residual : array of shape (K,) or (N, K), optional
        Residual logits of hybrid models.
    target : class name, index, or one per sample, optional
        The class explained; default the predicted class.

    Returns
    -------
    contrib : ndarray of shape (M,) or (N, M)
    residual_part : float, ndarray of shape (N,), or None
        The residual's share of the target logit (None for pure concept models).
    """
    single = np.ndim(activations) == 1
    A = np.atleast_2d(np.asarray(activations, np.float32))
    R = None if residual is None else np.asarray(residual, np.float32).reshape(len(A), -1)
    A, R = activations_and_residual(model, None, A, R)
    t = _targets(model, target, model.logits_from_activations(A, R))
    contrib = A * model.coef_[t]
    res = None if R is None else R[np.arange(len(A)), t]
    if single:
        return contrib[0], None if res is None else float(res[0])
    return contrib, res


@dataclass
class Explanation:
    """Why a model predicted what it did, for a batch of N samples.

    Attributes
    ----------
    activations : ndarray (N, M)
    logits : ndarray (N, K)
    residual : ndarray (N, K) or None
        Residual logits of hybrid models (shown apart from the concepts).
    target : ndarray (N,)
        The class explained for each sample (the predicted class unless asked otherwise).
    runner_up : ndarray (N,)
        The highest-scoring other class.
    margin : ndarray (N,)
        ``logit[target] - logit[runner_up]``.
    contributions : ndarray (N, M)
        Contributions to the target class (the full (N, K, M) tensor comes from :meth:`all_classes`).
    top_positive, top_negative : ndarray (N, top)
        Concept indices with the largest positive / most negative contributions.
    """

    activations: np.ndarray
    logits: np.ndarray
    residual: np.ndarray | None
    target: np.ndarray
    runner_up: np.ndarray
    margin: np.ndarray
    contributions: np.ndarray
    top_positive: np.ndarray
    top_negative: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    concept_names: list[str]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.logits)

    @property
    def pred(self) -> np.ndarray:
        """Predicted class index per sample."""
        return self.logits.argmax(1)

    def for_class(self, k: int | str) -> np.ndarray:
        """Contributions (N, M) to class ``k`` (index or name)."""
        k = self.class_names.index(k) if isinstance(k, str) else int(k)
        return self.activations * self.coef[k]

    def all_classes(self) -> np.ndarray:
        """Contributions to every class, shape (N, K, M); memory N*K*M floats, so use on small batches."""
        return self.activations[:, None, :] * self.coef[None, :, :]

    def residual_part(self) -> np.ndarray | None:
        """The residual's share (N,) of the target logit, None for pure concept models."""
        return None if self.residual is None else self.residual[np.arange(len(self)), self.target]

    def table(self, i: int) -> pd.DataFrame:
        """Sample ``i``: one row per concept (activation, weight, contribution), largest |contribution| first."""
        k = int(self.target[i])
        df = pd.DataFrame({
            "concept": self.concept_names, "activation": self.activations[i],
            "weight": self.coef[k], "contribution": self.contributions[i],
        })
        return df.reindex(df["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def summary(self, i: int) -> str:
        """A few readable lines for sample ``i`` (used by ``cbm explain``)."""
        k, r = int(self.target[i]), int(self.runner_up[i])
        lines = [f"class {self.class_names[k]!r}: score {self.logits[i, k]:.3f}, margin {self.margin[i]:+.3f} "
                 f"over {self.class_names[r]!r}"]
        for label, idx in (("for", self.top_positive[i]), ("against", self.top_negative[i])):
            parts = [f"{self.concept_names[j]} ({self.contributions[i, j]:+.3f})" for j in idx
                     if (self.contributions[i, j] > 0) == (label == "for") and self.contributions[i, j] != 0]
            lines.append(f"  {label}: " + (", ".join(parts) if parts else "none"))
        lines.append(f"  intercept: {self.intercept[k]:+.3f}")
        res = self.residual_part()
        if res is not None:
            lines.append(f"  residual (not explained by concepts): {res[i]:+.3f}")
        return "\n".join(lines)


def explain(model: Any, X: Any = None, *, activations: Any = None, residual: Any = None,
            target: Target = None, top: int = 5) -> Explanation:
    """Explain a batch of predictions: contributions, top concepts for and against, margin.

    Pass raw embeddings ``X`` or cached ``activations`` (and ``residual`` for hybrid models);
    ``target`` picks the class explained (default: the predicted class).
    """
    A, R = activations_and_residual(model, X, activations, residual)
    Z = model.logits_from_activations(A, R)
    t = _targets(model, target, Z)
    rows = np.arange(len(A))
    other = Z.copy()
    other[rows, t] = -np.inf
    runner = other.argmax(1) if Z.shape[1] > 1 else t
    C = A * model.coef_[t]
    top = max(0, min(int(top), A.shape[1]))
    order = np.argsort(C, axis=1, kind="stable")
    return Explanation(
        activations=A, logits=Z, residual=R, target=t, runner_up=runner,
        margin=Z[rows, t] - Z[rows, runner], contributions=C,
        top_positive=order[:, ::-1][:, :top], top_negative=order[:, :top],
        coef=np.asarray(model.coef_), intercept=np.asarray(model.intercept_),
        concept_names=model.concept_names_, class_names=model.class_names_,
    )


def explain_one(model: Any, x: Any = None, *, activations: Any = None, residual: Any = None,
                target: int | str | None = None, top: int = 5) -> Explanation:
    """:func:`explain` for one sample given as a 1-D embedding or activation vector."""
    x = None if x is None else np.atleast_2d(np.asarray(x, np.float32))
    a = None if activations is None else np.atleast_2d(np.asarray(activations, np.float32))
    r = None if residual is None else np.atleast_2d(np.asarray(residual, np.float32))
    return explain(model, x, activations=a, residual=r, target=target, top=top)


# -- interventions and counterfactuals -----------------------------------------------------------
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


# -- contrastive explanations ("why A and not B") --------------------------------------------------
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


# -- concept evidence --------------------------------------------------------------------------------
def concept_percentile(reference: Any, value: float) -> float:
    """Percentage (0-100) of the ``reference`` activations of one concept that are below ``value``.

    Ties count half, so the median of the reference gets about 50.
    """
    ref = np.asarray(reference, np.float64).ravel()
    if not len(ref):
        raise ValueError("The reference activations are empty; pass the concept's activations on "
                         "training or validation images.")
    return float(100.0 * ((ref < value).sum() + 0.5 * (ref == value).sum()) / len(ref))


def occlusion_map(model: Any, image: Any, concept: int | str, encoder: Any = None, *, patch: int | None = None,
                  stride: int | None = None, fill: int | None = None, batch: int = 64) -> np.ndarray:
    """Where in ``image`` concept ``concept`` fires: the drop in its activation when a patch is hidden.

    The image (PIL, uint8 array or path) is re-encoded with grey patches (``fill``, default the
    image's mean) over a grid (``patch`` pixels, default 1/4 of the side; ``stride`` default patch/2)
    with the model's encoder (:func:`encoder_for`) and scored with the concept's predictor. Returns
    an (H, W) float array: positive where hiding a region lowers the concept, so it fires there.
    Works for any backbone; costs one encoder pass per patch position.
    """
    from PIL import Image

    from cbm._images import to_rgb

    if isinstance(image, str | Path):
        from cbm.data.images import read_image

        image = read_image(image)
    arr = np.asarray(to_rgb(image), np.uint8)
    h, w = arr.shape[:2]
    j = concept_index(model, concept)
    encoder = encoder_for(model) if encoder is None else encoder
    patch = max(1, int(patch or max(h, w) // 4))
    stride = max(1, int(stride or max(1, patch // 2)))
    value = np.uint8(arr.mean() if fill is None else fill)
    boxes, images = [], []
    for top in range(0, max(1, h - patch + stride), stride):
        for left in range(0, max(1, w - patch + stride), stride):
            im = arr.copy()
            im[top:top + patch, left:left + patch] = value
            boxes.append((top, left))
            images.append(Image.fromarray(im))
    base = model.transform(np.asarray(encoder.encode_images([Image.fromarray(arr)]), np.float32))[0, j]
    scores = []
    for s in range(0, len(images), batch):
        X = np.asarray(encoder.encode_images(images[s:s + batch]), np.float32)
        scores.append(model.transform(X)[:, j])
    drop = base - np.concatenate(scores)
    heat, count = np.zeros((h, w), np.float64), np.zeros((h, w), np.float64)
    for (top, left), d in zip(boxes, drop, strict=True):
        heat[top:top + patch, left:left + patch] += d
        count[top:top + patch, left:left + patch] += 1
    return (heat / np.maximum(count, 1)).astype(np.float32)


# -- global view -----------------------------------------------------------------------------------
def weight_matrix(model: Any) -> pd.DataFrame:
    """The class-concept weight matrix ``coef_`` as a DataFrame (classes x concepts)."""
    return pd.DataFrame(np.asarray(model.coef_), index=model.class_names_, columns=model.concept_names_)


def top_concepts(model: Any, n: int = 5) -> pd.DataFrame:
    """Per class, the ``n`` concepts with the largest positive and the ``n`` most negative weights.

    Long format: columns ``class, sign, rank, concept, weight``; zero weights are left out.
    """
    W = np.asarray(model.coef_)
    rows = []
    for k, cls in enumerate(model.class_names_):
        order = np.argsort(W[k], kind="stable")
        for sign, idx in (("positive", order[::-1]), ("negative", order)):
            picked = [j for j in idx if (W[k, j] > 0 if sign == "positive" else W[k, j] < 0)][:n]
            rows += [(cls, sign, r + 1, model.concept_names_[j], float(W[k, j])) for r, j in enumerate(picked)]
    return pd.DataFrame(rows, columns=["class", "sign", "rank", "concept", "weight"])


def unused_concepts(model: Any, tol: float = 0.0) -> list[str]:
    """Concepts whose weight is at most ``tol`` in absolute value for every class."""
    unused = np.abs(np.asarray(model.coef_)).max(0) <= tol
    return [n for n, u in zip(model.concept_names_, unused, strict=True) if u]


# -- explaining a new image ------------------------------------------------------------------------
def embed_image(model: Any, image: Any, encoder: Any = None, max_pixels: int | None = None) -> np.ndarray:
    """Embed one image (a path, PIL image or uint8 array) with the model's recorded encoder: (1, d).

    A path is read by :func:`cbm.data.images.read_image` (pixel cap ``max_pixels``, the same
    conversions as ``cbm embed``). Pass ``encoder`` (from :func:`encoder_for`) to reuse one. A model
    with a source repair (:class:`~cbm.edits.NeutraliseAtSource`) gets it applied
    (:func:`cbm.models.source_repair.embed_for_model`).
    """
    from cbm.models.source_repair import embed_for_model, source_repair

    if isinstance(image, str | Path):
        from cbm.data.images import read_image

        image = read_image(image, max_pixels=max_pixels)
    encoder = encoder_for(model) if encoder is None else encoder
    if source_repair(model) is not None:
        return embed_for_model(model, [image], encoder)
    Z = np.asarray(encoder.encode_images([image]), np.float32)
    return Z if Z.ndim == 3 else Z.reshape(1, -1)  # (1, T, d) patch tokens for token models


def concept_map(model: Any, X: Any = None, *, image: Any = None, encoder: Any = None) -> np.ndarray:
    """Spatial concept attention maps (N, M, h, w) of a token model (``cct``), for patch tokens ``X``
    or one ``image`` (embedded with the model's recorded encoder, or ``encoder``).

    Draw one over its image with :func:`cbm.concept_maps.overlay`.
    """
    from cbm.concept_maps import concept_map as _maps

    if (X is None) == (image is None):
        raise ValueError("Pass patch tokens X or one image, not both.")
    return _maps(model, embed_image(model, image, encoder) if image is not None else X)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits as float32 (:func:`cbm.arrays.softmax`, for display and CSVs)."""
    return arrays.softmax(z, np.float32)


__all__ = [
    "Contrast", "Explanation", "Intervention", "concept_bounds", "concept_percentile", "contrast",
    "intervention_effects",
    "occlusion_map", "class_index", "concept_index", "contributions", "counterfactual",
    "counterfactual_table", "embed_image", "explain", "explain_one", "intervene",
    "softmax", "top_concepts",
    "unused_concepts", "weight_matrix",
]
