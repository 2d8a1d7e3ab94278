"""Evaluate edits before committing them, on activations cached once per split.

:class:`EvalSet` holds one split's concept activations (``model.transform`` run once), residual
logits, labels, domains and ids. :func:`preview` applies an edit's :class:`~cbm.edits.Plan` to the
cached logits only (a rank-1 update for one weight), so re-evaluating an edit on 10,000 samples
takes about a millisecond and never touches the encoder. :func:`suggest_edits` ranks concepts that
look spurious: their evidence for a class holds in one domain and not in another.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbm.data.evalfile import SPLIT_ORDER, load_eval_data, npz_splits, read_sample, save_eval_data
from cbm.edits import Edit, Plan, Prune
from cbm.edits._refit_edits import concept_layer_token
from cbm.exceptions import DataError, EditError, unknown_name_message
from cbm.explain import class_index, concept_index
from cbm.metrics import roc_auc


def head_token(model: Any) -> str:
    """Fingerprint of the linear head (weights, intercepts, concept names) and of the model's source
    repair, if any (it changes what the head sees)."""
    h = hashlib.sha1()
    for a in (model.coef_, model.intercept_):
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    h.update("\x1f".join(model.concept_names_).encode())
    repair = getattr(model, "source_repair_", None)
    if repair is not None:
        h.update(repr(sorted((k, v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in repair.items())).encode())
    return h.hexdigest()


def encode_labels(model: Any, y: Any, class_names: Iterable[str] | None = None) -> np.ndarray:
    """Labels (names, original class values, or indices into ``class_names``) -> class indices."""
    y = np.asarray(y)
    names = model.class_names_
    if getattr(model, "multilabel_", False):  # findings: an indicator matrix, one column per finding
        if y.ndim != 2 or y.shape[1] != len(names) or (y.size and not np.isin(y, (0, 1)).all()):
            raise DataError(f"The model is multi-label with {len(names)} findings {names[:10]}; the evaluation "
                            f"labels must be a 0/1 matrix (N, {len(names)}), got shape {y.shape}.")
        return y.astype(np.int8)
    if y.dtype.kind in "iu" and class_names is not None:
        y = np.asarray(list(class_names))[y]
    elif y.dtype.kind in "iu" and np.asarray(model.classes_).dtype.kind in "iu":
        y = y.astype(str)
    bad = sorted(set(y.astype(str).tolist()) - set(names))
    if bad:
        raise DataError(unknown_name_message("class", bad[0], names) + " (in the evaluation labels)")
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[v] for v in y.astype(str).tolist()], dtype=np.int64)


@dataclass
class EvalSet:
    """One evaluation split, cached as concept activations (no encoder pass to re-evaluate edits).

    Attributes
    ----------
    activations : ndarray (N, M), named by ``concept_names``
    y : ndarray (N,) of class indices
    residual : ndarray (N, K) or None (hybrid models)
    domains, ids : ndarray (N,) or None
    X : ndarray (N, d) or None
        Embeddings, kept only to score concepts added by :class:`~cbm.edits.AddConcept`.
    """

    name: str
    activations: np.ndarray
    y: np.ndarray
    concept_names: list[str]
    residual: np.ndarray | None = None
    domains: np.ndarray | None = None
    ids: np.ndarray | None = None
    X: np.ndarray | None = None
    layer: str | None = field(default=None, repr=False)
    _extra: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _logits: tuple[str, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def from_model(cls, model: Any, X: Any, y: Any, name: str = "data", domains: Any = None,
                   ids: Any = None, class_names: Iterable[str] | None = None, keep_X: bool = True) -> EvalSet:
        """Run ``model.transform`` once on embeddings ``X`` and cache what edits need."""
        X = np.asarray(X, np.float32)
        return cls(name, model.transform(X), encode_labels(model, y, class_names), model.concept_names_,
                   model.residual_logits(X) if model.hybrid else None,
                   None if domains is None else np.asarray(domains).astype(str),
                   None if ids is None else np.asarray(ids), X if keep_X else None, concept_layer_token(model))

    def sync(self, model: Any) -> EvalSet:
        """Bring the cached columns in line with the model's current concepts (in place); returns self.

        Columns of removed concepts are dropped; those of added concepts come from the cache
        filled by :func:`preview`, else are scored from ``X``. After an edit that refitted the
        concept layer (:class:`~cbm.edits.RefitWithout`, :class:`~cbm.edits.EraseConcept`) every
        column is recomputed from ``X``.
        """
        if self.layer is not None and (token := concept_layer_token(model)) != self.layer:
            if self.X is None:
                raise EditError(f"The model's concept layer changed since split {self.name!r} was cached; rebuild "
                                "it with EvalSet.from_model(model, X, y, keep_X=True).")
            self.activations = model.transform(self.X)
            self.residual = model.residual_logits(self.X) if model.hybrid else None
            self.concept_names, self.layer, self._extra, self._logits = model.concept_names_, token, {}, None
            return self
        names = model.concept_names_
        if names == self.concept_names:
            return self
        have = {n: i for i, n in enumerate(self.concept_names)}
        m_base = len(getattr(model, "keep_", names))
        cols = []
        for j, n in enumerate(names):
            if n in have:
                cols.append(self.activations[:, have[n]])
                continue
            if j < m_base:
                raise EditError(f"Split {self.name!r} has no activations for concept {n!r}; rebuild it with "
                                "EvalSet.from_model(model, X, y).")
            vectors, intercepts = model.added_concept_vectors
            i = j - m_base
            cols.append(self._score(model, n, vectors[i : i + 1], intercepts[i : i + 1])[:, 0])
        self.activations = np.stack(cols, 1).astype(np.float32)
        self.concept_names = list(names)
        self._logits = None
        return self

    def logits(self, model: Any) -> np.ndarray:
        """Class scores under the model's current head (cached per head)."""
        self.sync(model)
        token = head_token(model)
        if self._logits is None or self._logits[0] != token:
            self._logits = (token, model.logits_from_activations(self.activations, self.residual))
        return self._logits[1]

    def _score(self, model: Any, name: str, vectors: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
        """Activations (N, 1) of a concept given as a vector, scored once per vector and cached."""
        key = hashlib.sha1(np.ascontiguousarray(vectors, np.float32).tobytes()
                           + np.ascontiguousarray(intercepts, np.float32).tobytes()).hexdigest()
        if key not in self._extra:
            if self.X is None:
                raise EditError(f"Scoring the new concept {name!r} on split {self.name!r} needs its embeddings; "
                                "build the split with EvalSet.from_model(..., keep_X=True).")
            self._extra[key] = model.score_concept_vectors(self.X, vectors, intercepts)
        return self._extra[key]

    def added_column(self, model: Any, plan: Plan) -> np.ndarray:
        """Activations (N, m) of the concepts a plan adds."""
        bank, _ = plan.add
        inter = bank.intercepts if bank.intercepts is not None else np.zeros(len(bank), np.float32)
        return self._score(model, bank.names[0], bank.vectors, inter)


def updated_logits(model: Any, plan: Plan, es: EvalSet, logits: np.ndarray) -> np.ndarray:
    """Logits after ``plan`` from logits before it: only the changed weight block is multiplied."""
    out = logits.copy()
    if len(plan.rows) and len(plan.cols):
        delta = plan.new - plan.old(model)
        if len(plan.rows) == 1 and len(plan.cols) == 1:  # one weight: rank-1 update of one column
            out[:, plan.rows[0]] += es.activations[:, plan.cols[0]] * delta[0, 0]
        else:
            out[:, plan.rows] += es.activations[:, plan.cols] @ delta.T
    if plan.add is not None:
        out += es.added_column(model, plan) @ plan.add[1].T
    return out


@dataclass
class EditEffect:
    """What an edit does, measured before it is committed.

    Attributes
    ----------
    changes : DataFrame
        The weights that change: class, concept, old, new.
    accuracy : DataFrame
        One row per split and group ("all", "class=<name>", "domain=<name>"): n, before, after, delta.
        The "class=<name>" rows are that class's recall.
    changed : dict of split -> DataFrame
        Samples whose prediction changes: index, id, true, before, after.
    affected : str or None
        The class the edit is about (listed first in the per-class recall).
    baselines : DataFrame or None
        From :func:`compare_baselines`: split, model, accuracy, recall (of ``affected``).
    target : str or None
        The split the edit is meant to help (the shifted site), used by :meth:`verdict`.
    timing : dict or None
        Edits that re-embed images (:class:`~cbm.edits.source.NeutraliseAtSource`): seconds per image
        to embed before and after the edit, and the extra seconds per image.
    """

    edit: Edit
    changes: pd.DataFrame
    accuracy: pd.DataFrame
    changed: dict[str, pd.DataFrame]
    affected: str | None = None
    baselines: pd.DataFrame | None = None
    target: str | None = None
    timing: dict[str, float] | None = None

    def delta(self, split: str, group: str = "all") -> float:
        """Accuracy change (fraction) on ``split`` (optionally one group)."""
        return self.value(split, group, "delta")

    def value(self, split: str, group: str = "all", column: str = "after") -> float:
        """One number of :attr:`accuracy`: ``before``, ``after`` or ``delta`` of a split and group."""
        row = self.accuracy[(self.accuracy["split"] == split) & (self.accuracy["group"] == group)]
        if row.empty:
            raise KeyError(unknown_name_message("split", split, self.accuracy["split"].unique()))
        return float(row[column].iloc[0])

    def recall(self) -> pd.DataFrame:
        """Per-class recall before and after, one row per class (the affected class first), two
        columns per split (``<split> before``, ``<split> after``)."""
        acc = self.accuracy[self.accuracy["group"].str.startswith("class=")]
        splits = list(dict.fromkeys(acc["split"]))
        classes = list(dict.fromkeys(g[6:] for g in acc["group"]))
        if self.affected in classes:
            classes.remove(self.affected)
            classes.insert(0, self.affected)
        out = pd.DataFrame(index=pd.Index(classes, name="class"))
        for s in splits:
            part = acc[acc["split"] == s].set_index(acc[acc["split"] == s]["group"].str[6:])
            out[f"{s} before"] = part["before"].reindex(classes)
            out[f"{s} after"] = part["after"].reindex(classes)
        return out

    def verdict(self) -> str:
        """Plain words: does the edit repair the affected class, or gain by suppressing it?"""
        t, k = self.target, self.affected
        if t is None or t not in set(self.accuracy["split"]):
            return "No target split (the shifted site) to judge the edit on."
        gain = 100 * self.delta(t)
        if k is None:
            return f"The edit changes accuracy on {t!r} by {gain:+.1f} points."
        kb, ka = self.value(t, f"class={k}", "before"), self.value(t, f"class={k}", "after")
        base = {} if self.baselines is None else {
            r.model: r.accuracy for r in self.baselines[self.baselines["split"] == t].itertuples()}
        never = base.get(f"CBM never predicts {k}")
        bb = base.get("black box")
        after = self.value(t, "all", "after")
        if gain <= 0:
            return f"The edit does not help on {t!r} ({gain:+.1f} points); keep the model as it is."
        if never is not None and after <= never:
            if ka > kb + 0.02:
                return (f"A partial repair: the edit gains {gain:+.1f} points on {t!r} and {k!r} recall rises "
                        f"{kb:.1%} -> {ka:.1%}, but never predicting {k!r} at all still scores higher "
                        f"({never:.1%} vs {after:.1%}): there the model's remaining {k!r} predictions cost more "
                        "than they gain.")
            than = ("does as well" if never - after < 0.005 else
                    f"does {100 * (never - after):.1f} points better")
            return (f"The edit gains {gain:+.1f} points on {t!r} only by suppressing {k!r}: never predicting "
                    f"{k!r} at all {than} ({never:.1%} vs {after:.1%}); {k!r} recall {kb:.1%} -> {ka:.1%}. "
                    "It silences the class; it does not repair it.")
        if ka < kb - 0.02:
            return (f"The edit gains {gain:+.1f} points on {t!r} but {k!r} recall falls {kb:.1%} -> {ka:.1%}: "
                    f"part of the gain comes from predicting {k!r} less.")
        words = ((f"The edit helps little: {gain:+.1f} points on {t!r}" if gain < 2 else
                  f"The edit repairs the model: {gain:+.1f} points on {t!r}") + f", {k!r} recall {kb:.1%} -> {ka:.1%}"
                 + (f", above never predicting {k!r} ({never:.1%})" if never is not None else ""))
        if bb is not None:
            words += f"; the black box reaches {bb:.1%} on {t!r}" + (" (the edited CBM is ahead)" if after > bb
                                                                   else " (still ahead of the edited CBM)")
        for s in dict.fromkeys(self.accuracy["split"]):
            rows = self.accuracy[(self.accuracy["split"] == s) & (self.accuracy["group"] == f"class={k}")]
            if s != t and len(rows) and rows["after"].iloc[0] < rows["before"].iloc[0] - 0.1:
                words += (f". On {s!r} {k!r} recall falls {rows['before'].iloc[0]:.1%} -> {rows['after'].iloc[0]:.1%}: "
                          f"there the artifact was much of what identified {k!r}")
                break
        return words + "."

    def baselines_table(self) -> pd.DataFrame:
        """Accuracy per baseline (rows, as computed) and split (columns: held-out first, ``train`` last)."""
        if self.baselines is None or not len(self.baselines):
            return pd.DataFrame()
        b = self.baselines
        order = list(dict.fromkeys(b["split"]))
        splits = [s for s in order if s != "train"] + [s for s in order if s == "train"]
        return b.pivot(index="model", columns="split", values="accuracy").reindex(
            index=list(dict.fromkeys(b["model"])), columns=splits)

    def report(self) -> str:
        """Readable summary: the edit, accuracy per split, per-class recall (affected class first),
        baselines side by side and a verdict."""
        lines = [f"edit: {self.edit.plain()} ({len(self.changes)} weight(s) change)"]
        for r in self.accuracy[self.accuracy["group"] == "all"].itertuples():
            lines.append(f"  {r.split}: accuracy {r.before:.1%} -> {r.after:.1%} ({100 * r.delta:+.1f} points, "
                         f"n={r.n}); {len(self.changed[r.split])} prediction(s) change")
        rec = self.recall()
        if len(rec):
            splits = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in rec.columns))
            lines += ["  per-class recall, before -> after" + (f" ({self.affected!r} first)" if self.affected else "")
                      + ":", "    " + f"{'class':<14}" + "".join(f"{s:>17}" for s in splits)]
            for c, r in rec.iterrows():
                cells = "".join(f"{r[f'{s} before']:>8.3f} -> {r[f'{s} after']:.3f}" for s in splits)
                lines.append(f"    {c:<14}{cells}")
        if self.baselines is not None and len(self.baselines):
            b = self.baselines
            splits = list(self.baselines_table().columns)
            k = self.affected or "class"
            lines += [f"  baselines: accuracy (recall of {k!r}) per split:",
                      "    " + f"{'model':<30}" + "".join(f"{s:>18}" for s in splits)]
            for m in dict.fromkeys(b["model"]):
                cells = ""
                for s in splits:
                    r = b[(b["model"] == m) & (b["split"] == s)]
                    cells += (f"{r['accuracy'].iloc[0]:>10.3f} ({r['recall'].iloc[0]:.2f})" if len(r) else f"{'-':>18}")
                lines.append(f"    {m:<30}{cells}")
        if self.timing:
            t = self.timing
            lines.append(f"  time per image from images: {t['seconds_per_image_before'] * 1e3:.1f} ms -> "
                         f"{t['seconds_per_image_after'] * 1e3:.1f} ms ({t['extra_seconds_per_image'] * 1e3:+.1f} ms)")
        lines.append("  verdict: " + self.verdict())
        return "\n".join(lines)


def as_evalsets(evalsets: EvalSet | Mapping[str, EvalSet] | Iterable[EvalSet]) -> list[EvalSet]:
    """One EvalSet, a mapping of them or an iterable of them, as a list."""
    if isinstance(evalsets, EvalSet):
        return [evalsets]
    return list(evalsets.values()) if isinstance(evalsets, Mapping) else list(evalsets)


def _groups(es: EvalSet, names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = [("all", np.ones(len(es), bool))]
    out += [(f"class={names[k]}", es.y == k) for k in np.unique(es.y)]
    if es.domains is not None and len(np.unique(es.domains)) > 1:
        out += [(f"domain={d}", es.domains == d) for d in np.unique(es.domains)]
    return out


def edited_copy(model: Any, edit: Edit) -> tuple[Any, list[dict[str, Any]]]:
    """A copy of ``model`` with ``edit`` applied (the model itself is untouched) and its changes.

    Refitting edits cache the copy on the edit, so previewing the same edit of the same model
    twice (a suggestion, then its report) refits once.
    """
    import copy

    key = (id(model), head_token(model), concept_layer_token(model))
    cached = _EDITED.get(id(edit))
    if cached is not None and cached[0]() is edit and cached[1] == key:
        return cached[2], cached[3]
    m2 = copy.deepcopy(model)
    record = edit.apply(m2)
    if id(edit) not in _EDITED:  # the entry lives as long as the edit
        weakref.finalize(edit, _EDITED.pop, id(edit), None)
    _EDITED[id(edit)] = (weakref.ref(edit), key, m2, record.changes)
    return m2, record.changes


#: id(edit) -> (weak reference to the edit, model key, edited copy, changes), for :func:`edited_copy`
_EDITED: dict[int, tuple[weakref.ref, tuple, Any, list[dict[str, Any]]]] = {}


def affected_class(model: Any, edit: Edit) -> str | None:
    """The class an edit is about: its ``cls``, else the class leaning most on its concept."""
    cls = getattr(edit, "cls", None)
    if cls is not None:
        return model.class_names_[class_index(model, cls)]
    concept = getattr(edit, "concept", None)
    if concept is None:
        return None
    j = concept_index(model, concept)
    return model.class_names_[int(np.argmax(np.asarray(model.coef_)[:, j]))]


def _edited_logits(model: Any, edit: Edit, sets: list[EvalSet]
                   ) -> tuple[list[dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]:
    """The weight changes of ``edit`` and each split's logits (before, after) it, the model untouched."""
    from cbm.edits import RefitEdit

    if getattr(edit, "source_level", False):  # NeutraliseAtSource: re-embeds each split's images
        return edit.edited_logits(model, sets)
    if isinstance(edit, RefitEdit):
        missing = [es.name for es in sets if es.X is None]
        if missing:
            raise EditError(f"Previewing {edit.kind} re-scores the embeddings of splits {missing}; build them with "
                            "EvalSet.from_model(..., keep_X=True).")
        m2, changes = edited_copy(model, edit)
        return changes, [(es.logits(model), m2.decision_function(es.X)) for es in sets]
    plan = edit.plan(model)
    return plan.changes, [(b := es.logits(model), updated_logits(model, plan, es, b)) for es in sets]


def preview(model: Any, edit: Edit, evalsets: EvalSet | Mapping[str, EvalSet] | Iterable[EvalSet],
            target: str | None = None) -> EditEffect:
    """Accuracy before and after ``edit`` on each split (and per class), and the samples whose
    prediction changes. Nothing is committed; the model is not modified.

    Head edits update cached logits only; refitting edits (:class:`~cbm.edits.RefitEdit`) are
    applied to a copy of the model on their training data and re-score each split's ``X``.
    ``target`` names the split the edit should help (default: "shifted" when present).
    """
    sets = as_evalsets(evalsets)
    names = model.class_names_
    changes, logits = _edited_logits(model, edit, sets)
    if getattr(model, "multilabel_", False):
        return _preview_findings(model, edit, sets, changes, logits)
    rows, changed = [], {}
    for es, (before, after) in zip(sets, logits, strict=True):
        p0, p1 = before.argmax(1), after.argmax(1)
        ok0, ok1 = p0 == es.y, p1 == es.y
        for group, mask in _groups(es, names):
            n = int(mask.sum())
            b, a = float(ok0[mask].mean()) if n else np.nan, float(ok1[mask].mean()) if n else np.nan
            rows.append((es.name, group, n, b, a, a - b))
        idx = np.flatnonzero(p0 != p1)
        changed[es.name] = pd.DataFrame({
            "index": idx, "id": es.ids[idx] if es.ids is not None else idx,
            "true": [names[k] for k in es.y[idx]], "before": [names[k] for k in p0[idx]],
            "after": [names[k] for k in p1[idx]],
        })
    acc = pd.DataFrame(rows, columns=["split", "group", "n", "before", "after", "delta"])
    split_names = [es.name for es in sets]
    if target is None:
        target = "shifted" if "shifted" in split_names else None
    return EditEffect(edit, pd.DataFrame(changes, columns=["class", "concept", "old", "new"]), acc, changed,
                      affected=affected_class(model, edit), target=target, timing=getattr(edit, "timing_", None))


def suggest_edits(model: Any, evalsets: EvalSet | Mapping[str, EvalSet] | Iterable[EvalSet],
                  top: int = 10) -> pd.DataFrame:
    """Rank class-concept weights that look spurious, most suspicious first.

    For each domain ``d`` (from ``domains``, else the split name), the evidence of concept ``j``
    for class ``k`` is ``W[k, j] * (mean A[y == k, j] - mean A[y != k, j])``: how much it separates
    the class from the others through its weight. A concept whose evidence is large in one domain
    and small or negative in another carries class evidence in one site only. Weights that
    contradict the concept bank's prior are listed too. Columns: ``class, concept, weight, score,
    reason, edit`` (a :class:`~cbm.edits.Prune` to preview).
    """
    sets = [es.sync(model) for es in as_evalsets(evalsets)]
    W = np.asarray(model.coef_, np.float64)
    cls, con = model.class_names_, model.concept_names_
    A = np.concatenate([es.activations for es in sets]).astype(np.float64)
    y = np.concatenate([es.y for es in sets])
    dom = np.concatenate([es.domains if es.domains is not None else np.full(len(es), es.name) for es in sets])
    rows = []
    doms = [str(d) for d in np.unique(dom)]
    if len(doms) > 1:
        ev = {}
        for d in doms:
            m = dom == d
            E = np.full(W.shape, np.nan)
            for k in range(W.shape[0]):
                has = (y[:, k] == 1) if y.ndim == 2 else (y == k)  # a finding's column, or a class
                pos, neg = m & has, m & ~has
                if pos.any() and neg.any():
                    E[k] = W[k] * (A[pos].mean(0) - A[neg].mean(0))
            ev[d] = E
        stack = np.stack([ev[d] for d in doms])  # (D, K, M)
        hi, lo = np.nanargmax(np.nan_to_num(stack, nan=-np.inf), 0), np.nanargmin(np.nan_to_num(stack, nan=np.inf), 0)
        gap = np.take_along_axis(stack, hi[None], 0)[0] - np.take_along_axis(stack, lo[None], 0)[0]
        for k, j in zip(*np.unravel_index(np.argsort(-np.nan_to_num(gap, nan=-1), axis=None), gap.shape), strict=True):
            if not np.isfinite(gap[k, j]) or gap[k, j] <= 0 or W[k, j] == 0 or len(rows) >= top:
                break
            e_hi, e_lo = stack[hi[k, j], k, j], stack[lo[k, j], k, j]
            rows.append((cls[k], con[j], W[k, j], gap[k, j],
                         f"its weight x activation separates {cls[k]!r} from the other classes by {e_hi:+.3f} in "
                         f"domain {doms[hi[k, j]]!r} but {e_lo:+.3f} in {doms[lo[k, j]]!r}"))
    prior = getattr(model.concepts_, "prior", None)
    if prior is not None and model.concepts_.classes and all(c in model.concepts_.classes for c in cls):
        P = prior[[model.concepts_.classes.index(c) for c in cls]]
        bad = np.argwhere(P * np.sign(W) < 0)
        for k, j in sorted(bad.tolist(), key=lambda kj: -abs(W[kj[0], kj[1]]))[:top]:
            said = "describes" if P[k, j] > 0 else "does not describe"
            rows.append((cls[k], con[j], W[k, j], abs(W[k, j]),
                         f"weight {W[k, j]:+.3f} for {cls[k]!r}, but the concept prior says it {said} {cls[k]!r}"))
    df = pd.DataFrame(rows, columns=["class", "concept", "weight", "score", "reason"])
    df["edit"] = [Prune(c, j) for c, j in zip(df["class"], df["concept"], strict=True)]
    return df.drop_duplicates(["class", "concept"]).reset_index(drop=True)


def load_evalsets(model: Any, path: str | Path, splits: Iterable[str] | None = None,
                  keep_X: bool = True, encoder: Any = None) -> dict[str, EvalSet]:
    """Read splits from an evaluation ``.npz`` and cache their activations (one transform each); a
    model with a source repair scores each split's images re-embedded with it (by ``encoder``, default
    the model's recorded one)."""
    from cbm.models.source_repair import model_embeddings

    data = load_eval_data(path)
    out = {}
    for s in (list(data) if splits is None else list(splits)):
        if s not in data:
            raise DataError(unknown_name_message("split", s, list(data)) + f" (in {str(path)!r})")
        d = data[s]
        X = model_embeddings(model, d["X"], d.get("images"), encoder, what=f"the pooled embeddings of split {s!r} in "
                             f"{str(path)!r} (it has no images_{s})")  # a source repair re-embeds the images
        out[s] = EvalSet.from_model(model, X, d["y"], s, d.get("domains"), d.get("ids"), keep_X=keep_X)
    return out


@dataclass
class FindingEditEffect(EditEffect):
    """What an edit of a multi-label model does, per finding (a :class:`EditEffect`).

    Attributes
    ----------
    findings : DataFrame
        One row per finding and split, the most affected finding first: split, finding, n,
        n_positive, auroc_before, auroc_after, ap_before, ap_after, changed (samples whose
        presence call, probability >= 0.5, flips). ``accuracy`` holds each split's mean AUROC
        (group "all").
    """

    findings: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """Per split and finding: AUROC and average precision before and after (for the edit log)."""
        out: dict[str, Any] = {}
        for r in self.findings.itertuples():
            out.setdefault(str(r.split), {})[str(r.finding)] = {
                "n": int(r.n), "auroc_before": round(float(r.auroc_before), 6),
                "auroc_after": round(float(r.auroc_after), 6), "ap_before": round(float(r.ap_before), 6),
                "ap_after": round(float(r.ap_after), 6), "predictions_changed": int(r.changed)}
        return out

    def verdict(self) -> str:
        """Plain words: which finding moves most, and whether the others stay put."""
        f = self.findings
        if f is None or f.empty:
            return "No evaluation data to judge the edit on."
        top = f.iloc[0]
        d_auc, d_ap = top.auroc_after - top.auroc_before, top.ap_after - top.ap_before
        if not (abs(d_auc) > 1e-9 or abs(d_ap) > 1e-9):
            return "The edit changes no finding's AUROC or average precision."
        rest = f[f["finding"] != top.finding]
        moved = rest[((rest.auroc_after - rest.auroc_before).abs() > 1e-9)
                     | ((rest.ap_after - rest.ap_before).abs() > 1e-9)]["finding"].unique()
        words = (f"The edit moves {top.finding!r} most: AUROC {top.auroc_before:.3f} -> {top.auroc_after:.3f}, "
                 f"AP {top.ap_before:.3f} -> {top.ap_after:.3f} on {top.split!r}")
        return words + (f"; it also changes {', '.join(map(repr, moved))}." if len(moved)
                        else "; the other findings are unchanged.")

    def report(self) -> str:
        """Readable summary: the edit and, per finding (most affected first), AUROC and AP before -> after."""
        lines = [f"edit: {self.edit.describe()} ({len(self.changes)} weight(s) change)",
                 "  per finding, before -> after (most affected first):",
                 f"    {'finding':<16}{'split':<10}{'AUROC':>18}{'AP':>18}{'calls changed':>15}"]
        for r in self.findings.itertuples():
            lines.append(f"    {str(r.finding):<16}{str(r.split):<10}{r.auroc_before:>8.3f} -> {r.auroc_after:.3f}"
                         f"{r.ap_before:>8.3f} -> {r.ap_after:.3f}{r.changed:>15d}")
        lines.append("  verdict: " + self.verdict())
        return "\n".join(lines)


def _ranking(y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """(AUROC, average precision) of scores ``z`` for 0/1 labels ``y``; NaN without both outcomes."""
    from sklearn.metrics import average_precision_score

    if y.min() == y.max():
        return np.nan, np.nan
    return roc_auc(z, y), float(average_precision_score(y, z))


def _preview_findings(model: Any, edit: Edit, sets: list[EvalSet], changes: list[dict[str, Any]],
                      logits: list[tuple[np.ndarray, np.ndarray]]) -> FindingEditEffect:
    """:func:`preview` of a multi-label model: AUROC and AP per finding and split, before and after."""
    names = model.class_names_
    rows, acc, changed = [], [], {}
    for es, (before, after) in zip(sets, logits, strict=True):
        flips = (before >= 0) != (after >= 0)  # probability >= 0.5 <=> logit >= 0
        for k, name in enumerate(names):
            (a0, p0), (a1, p1) = _ranking(es.y[:, k], before[:, k]), _ranking(es.y[:, k], after[:, k])
            rows.append((es.name, name, len(es), int(es.y[:, k].sum()), a0, a1, p0, p1, int(flips[:, k].sum())))
        idx, col = np.nonzero(flips)
        changed[es.name] = pd.DataFrame({
            "index": idx, "id": es.ids[idx] if es.ids is not None else idx,
            "finding": [names[k] for k in col], "before": before[idx, col] >= 0, "after": after[idx, col] >= 0})
        split_rows = rows[-len(names):]
        b, a = np.nanmean([r[4] for r in split_rows] or [np.nan]), np.nanmean([r[5] for r in split_rows] or [np.nan])
        acc.append((es.name, "all", len(es), b, a, a - b))
    df = pd.DataFrame(rows, columns=["split", "finding", "n", "n_positive", "auroc_before", "auroc_after",
                                     "ap_before", "ap_after", "changed"])
    move = ((df.auroc_after - df.auroc_before).abs().fillna(0) + (df.ap_after - df.ap_before).abs().fillna(0)
            + 1e-6 * df.changed)
    rank = move.groupby(df["finding"]).max().sort_values(ascending=False, kind="stable")
    df = df.assign(_r=df["finding"].map({f: i for i, f in enumerate(rank.index)})).sort_values(
        ["_r"], kind="stable").drop(columns="_r").reset_index(drop=True)
    return FindingEditEffect(edit, pd.DataFrame(changes, columns=["class", "concept", "old", "new"]),
                             pd.DataFrame(acc, columns=["split", "group", "n", "before", "after", "delta"]),
                             changed, affected=affected_class(model, edit), findings=df)


# the evaluation-file format lives in cbm.data.evalfile; re-exported for callers of this module
__all__ = ["SPLIT_ORDER", "EditEffect", "EvalSet", "FindingEditEffect", "encode_labels", "head_token", "load_eval_data",
           "load_evalsets", "npz_splits", "preview", "read_sample", "save_eval_data", "suggest_edits",
           "updated_logits"]
