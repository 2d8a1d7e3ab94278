"""Is a concept predictor faithful to its concept, or a class label (or an artifact) in disguise?

For every concept of a fitted model, on held-out images with per-image concept labels:

- ``auc``: how well the activation ranks images labelled "yes" above "no" (all images);
- ``auc_within_class``: the same inside each class, averaged over classes where the label varies
  (NaN when the labels are constant within every class: a class-level concept);
- ``class_share``: the share of the activation's variance explained by the class (eta squared);
- ``leakage``: how well the activation separates images with and without a nuisance (e.g. an
  imaging artifact) inside each class, ``0.5 + mean |AUC - 0.5|`` (0.5: no leak);
- ``disguised``: the activation is mostly the class (``class_share`` >= 0.8) and does not follow the
  concept within a class: a class detector under a concept's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cbm.metrics import roc_auc

#: the package's one ROC AUC under its old name here
auc = roc_auc


def _within(scores: np.ndarray, labels: np.ndarray, y: np.ndarray, min_n: int = 3) -> list[float]:
    out = []
    for c in np.unique(y):
        m = y == c
        lab = labels[m]
        if (lab == 1).sum() >= min_n and (lab == 0).sum() >= min_n:
            out.append(auc(scores[m][lab >= 0], lab[lab >= 0] == 1))
    return out


def concept_faithfulness(model: Any, X: np.ndarray, y: np.ndarray, concept_labels: np.ndarray, bank: Any,
                         nuisance: np.ndarray | None = None, disguise_share: float = 0.8) -> pd.DataFrame:
    """One row per concept of ``model`` found in ``bank`` (whose columns ``concept_labels`` (N, M_bank)
    follow: 1 yes, 0 no, -1 unknown): concept, auc, auc_within_class, class_share, leakage, disguised.
    ``nuisance`` (N,) flags an artifact to measure leakage against."""
    A = model.transform(X)
    y = np.asarray(y)
    L = np.asarray(concept_labels)
    rows = []
    for j, name in enumerate(model.concept_names_):
        if name not in bank.names:
            continue
        a, lab = A[:, j], L[:, bank.index(name)]
        used = lab >= 0
        within = _within(a, lab, y)
        means = pd.Series(a).groupby(y).transform("mean").to_numpy()
        share = float(((means - a.mean()) ** 2).sum() / max(((a - a.mean()) ** 2).sum(), 1e-12))
        leak = np.nan
        if nuisance is not None:
            nu = np.asarray(nuisance).astype(int)
            if not np.array_equal((lab == 1)[used], nu[used].astype(bool)):
                per = _within(a, nu, y)
                leak = 0.5 + float(np.mean(np.abs(np.asarray(per) - 0.5))) if per else np.nan
        w = float(np.mean(within)) if within else np.nan
        rows.append((name, auc(a[used], lab[used] == 1), w, share, leak,
                     bool(share >= disguise_share and not (w >= 0.6))))
    return pd.DataFrame(rows, columns=["concept", "auc", "auc_within_class", "class_share", "leakage", "disguised"])


def faithfulness_report(df: pd.DataFrame, top: int = 5) -> str:
    """A few lines: concepts that follow the image within a class, class labels in disguise, the
    leakiest concepts."""
    varying = df[df["auc_within_class"].notna()].sort_values("auc_within_class", ascending=False)
    lines = [f"Concept faithfulness on the validation split ({len(df)} concepts): "
             f"{int(df['disguised'].sum())} are class labels in disguise (>= 80% of the activation is the class, "
             f"no within-class signal); {len(varying)} vary within a class:"]
    for r in varying.itertuples():
        lines.append(f"  {r.concept:<34} AUC {r.auc:.2f}, within class {r.auc_within_class:.2f}, "
                     f"class share {r.class_share:.2f}" + ("" if np.isnan(r.leakage) else f", leakage {r.leakage:.2f}"))
    if df["leakage"].notna().any():
        leaky = df[df["leakage"].notna()].sort_values("leakage", ascending=False).head(top)
        lines.append("  leakiest (activation separates tagged from untagged images of the same class; 0.5 = none): "
                     + ", ".join(f"{r.concept} {r.leakage:.2f}" for r in leaky.itertuples()))
    return "\n".join(lines)


__all__ = ["auc", "concept_faithfulness", "faithfulness_report"]
