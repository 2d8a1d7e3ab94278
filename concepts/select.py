"""LaBo's submodular concept selection: per class, pick concepts that are discriminative and
that together cover the class's candidates (facility location), by greedy maximisation.

Objective for a class's candidate set ``S``::

    F(S) = sum_{c in S} w_d * D(c)  +  w_c * sum_t max_{c in S} max(W[c, t], 0)

``D`` is the discriminability score:

* ``score="kl"`` (released code): mass-weighted KL divergence of the class distribution of a
  concept's similarity from uniform; similarities are first normalised per class over *all*
  candidates, so scores are tiny and the released configs scale them by 1e7.
* ``score="negentropy"`` (paper): negative entropy of p(y | c) = Sim(c, y) / sum_y Sim(c, y).

``W`` is the coverage matrix:

* ``coverage="features"`` (released code): raw feature columns ``[w_d * D(c), concept vector]``;
  apricot's ``MixtureSelection`` ignores the inner ``metric="cosine"``, so this is what LaBo runs.
* ``coverage="cosine"`` (paper): cosine similarities among the class's candidates.

Greedy is exact (the same picks as naive greedy, up to exact ties). ``algorithm="incremental"``
(default) keeps every candidate's gain exact by updating it only on the coverage columns that the
last pick raised, so a step costs ``n x (columns changed)`` instead of ``n x t``; ``"lazy"`` is
batched lazy evaluation (stale gains are upper bounds); ``"naive"`` recomputes every gain.

Reference: Yang et al., "Language in a Bottle", CVPR 2023.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cbm.bank import ConceptBank

SCORES = ("kl", "negentropy")
COVERAGES = ("features", "cosine")


def class_similarity(concepts: Any, images: Any, labels: Any, n_classes: int | None = None
                     ) -> torch.Tensor:
    """Mean cosine similarity of each concept to the images of each class, shape (M, K)."""
    c = torch.nn.functional.normalize(torch.as_tensor(np.asarray(concepts), dtype=torch.float64), dim=1)
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(images), dtype=torch.float64), dim=1)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    k = int(n_classes if n_classes is not None else int(y.max()) + 1)
    onehot = torch.nn.functional.one_hot(y, k).double()
    counts = onehot.sum(0).clamp_min(1)
    return (c @ x.T) @ onehot / counts


def discriminability(sim: torch.Tensor, score: str = "kl") -> torch.Tensor:
    """Discriminability of each concept from its class similarities ``sim`` (M, K), shape (M,)."""
    sim = torch.as_tensor(sim, dtype=torch.float64).clamp_min(1e-12)
    k = sim.shape[1]
    if score == "kl":
        p = sim / (sim.sum(0, keepdim=True) * k)
        mass = p.sum(1, keepdim=True)
        return (p * torch.log(p / (mass / k))).sum(1)
    if score == "negentropy":
        p = sim / sim.sum(1, keepdim=True)
        return (p * torch.log(p)).sum(1)
    raise ValueError(f"score must be one of {SCORES}; got {score!r}.")


ALGORITHMS = ("incremental", "lazy", "naive")


def greedy_select(
    coverage: Any,
    budget: int,
    modular: Any | None = None,
    modular_weight: float = 1.0,
    coverage_weight: float = 1.0,
    algorithm: str = "incremental",
    dtype: torch.dtype = torch.float64,
    batch: int = 128,
) -> tuple[list[int], list[float]]:
    """Greedy maximisation of ``modular_weight * sum modular + coverage_weight * FL(coverage)``.

    Parameters
    ----------
    coverage : array (n, t)
        Row ``i`` is what candidate ``i`` covers of the ``t`` targets (facility location).
    budget : int
        Number of picks (at most ``n``).
    modular : array (n,), optional
        Per-candidate additive score.
    algorithm : {"incremental", "lazy", "naive"}
        All exact; see the module docstring. ``batch`` is the lazy variant's re-evaluation size.

    Returns
    -------
    ranking : list of int
        Picks in order.
    gains : list of float
        Objective gain of each pick.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}.")
    W = torch.as_tensor(np.asarray(coverage), dtype=dtype)
    n = W.shape[0]
    budget = min(int(budget), n)
    mod = (torch.zeros(n, dtype=dtype) if modular is None
           else torch.as_tensor(np.asarray(modular), dtype=dtype) * modular_weight)
    cw = float(coverage_weight)
    cur = torch.zeros(W.shape[1], dtype=dtype)
    ranking, gains = [], []
    if algorithm == "incremental":
        gain = mod + cw * W.clamp_min(0).sum(1)
        for _ in range(budget):
            i = int(torch.argmax(gain))
            ranking.append(i)
            gains.append(float(gain[i]))
            cols = torch.nonzero(W[i] > cur).flatten()
            if len(cols):
                Wc, old, new = W.index_select(1, cols), cur.index_select(0, cols), W[i].index_select(0, cols)
                gain -= cw * ((Wc - old).clamp_min_(0).sum(1) - (Wc - new).clamp_min_(0).sum(1))
                cur.index_copy_(0, cols, new)
            gain[i] = -math.inf
        return ranking, gains
    if algorithm == "naive":
        avail = torch.ones(n, dtype=torch.bool)
        for _ in range(budget):
            g = mod + cw * (W - cur).clamp_min_(0).sum(1)
            g[~avail] = -math.inf
            i = int(torch.argmax(g))
            ranking.append(i)
            gains.append(float(g[i]))
            avail[i] = False
            torch.maximum(cur, W[i], out=cur)
        return ranking, gains
    # Batched lazy greedy: gains only shrink (submodularity), so stale gains are upper bounds;
    # the top bound being exact (fresh this step) makes it the exact argmax.
    ub = mod + cw * W.clamp_min(0).sum(1)
    stamp = torch.full((n,), -1, dtype=torch.long)  # step at which ub[i] was last made exact
    for step in range(budget):
        m = min(batch, n - step)
        while True:
            _, cand = torch.topk(ub, m)
            if stamp[cand[0]] == step:
                break
            ev = cand[stamp.index_select(0, cand) != step]
            exact = mod.index_select(0, ev) + cw * (W.index_select(0, ev) - cur).clamp_min_(0).sum(1)
            ub.index_copy_(0, ev, exact)
            stamp.index_fill_(0, ev, step)
        i = int(cand[0])
        ranking.append(i)
        gains.append(float(ub[i]))
        ub[i] = -math.inf
        torch.maximum(cur, W[i], out=cur)
    return ranking, gains


def _label_indices(labels: Any, classes: Sequence[str]) -> np.ndarray:
    """Labels as indices into ``classes``: names are matched by name, integers kept as indices."""
    y = np.asarray(labels)
    if np.issubdtype(y.dtype, np.integer):
        return y
    lookup = {str(c): i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in y.tolist()} - set(lookup))
    if unknown:
        raise ValueError(f"Labels name classes the bank does not have: {unknown[:5]}; the bank's classes "
                         f"are {list(classes)[:10]}. Use the same class names, or map them first.")
    return np.array([lookup[str(v)] for v in y.tolist()], dtype=np.int64)


def select_concepts(
    bank: ConceptBank,
    image_embeddings: Any | None = None,
    labels: Any | None = None,
    n_per_class: int | None = None,
    n_total: int | None = None,
    score: str = "kl",
    coverage: str = "features",
    discriminability_weight: float = 1e7,
    coverage_weight: float = 1.0,
    concept_classes: Sequence[int] | None = None,
    algorithm: str = "incremental",
) -> tuple[ConceptBank, dict[str, Any]]:
    """Select concepts per class with LaBo's submodular objective.

    Parameters
    ----------
    bank : ConceptBank
        Candidates with ``vectors`` (text embeddings in the image space) and, unless
        ``concept_classes`` is given, a prior telling which class each concept was made for
        (the class with the largest prior value).
    image_embeddings, labels : arrays (N, d) and (N,), optional
        Training images and labels for discriminability: class names (matched to
        ``bank.classes`` by name) or indices into ``bank.classes``; without them only coverage
        counts.
    n_per_class, n_total : int
        Budget per class, or in total (``ceil(n_total / K)`` per class, as the released code).
    score : {"kl", "negentropy"}
    coverage : {"features", "cosine"}
    discriminability_weight, coverage_weight : float
        LaBo's ``submodular_weights`` (released configs use 1e7 and 0-100).

    Returns
    -------
    bank : ConceptBank
        Selected concepts (grouped by class); ``metadata["selection"]`` records the settings.
    info : dict
        ``{"per_class": {class: [names]}, "gains": {class: [floats]}, "scores": [...]}``.
    """
    if score not in SCORES or coverage not in COVERAGES:
        raise ValueError(f"score must be one of {SCORES} and coverage one of {COVERAGES}; got "
                         f"{score!r}, {coverage!r}.")
    if bank.vectors is None:
        raise ValueError("select_concepts needs concept vectors; embed the bank first "
                         "(cbm.concepts.embed_bank(bank, encoder)).")
    if concept_classes is None:
        if bank.prior is None:
            raise ValueError("select_concepts needs to know each concept's class: a bank with a "
                             "prior (LLM banks have one) or concept_classes=.")
        concept_classes = np.asarray(bank.prior).argmax(0)
    owner = np.asarray(concept_classes, int)
    classes = bank.classes or [str(k) for k in range(int(owner.max()) + 1)]
    k = len(classes)
    if (n_per_class is None) == (n_total is None):
        raise ValueError("Give exactly one budget: n_per_class= or n_total=.")
    per = int(n_per_class) if n_per_class is not None else math.ceil(int(n_total) / k)
    feats = torch.as_tensor(bank.vectors, dtype=torch.float64)
    if image_embeddings is not None and labels is not None and discriminability_weight:
        labels = _label_indices(labels, classes)
        d = discriminability(class_similarity(feats, image_embeddings, labels, k), score)
    else:
        d = torch.zeros(len(bank), dtype=torch.float64)
        discriminability_weight = 0.0
    keep, per_class, gains = [], {}, {}
    for c in range(k):
        idx = np.flatnonzero(owner == c)
        if len(idx) <= per:
            picks, g = list(range(len(idx))), []
        elif coverage == "features":
            cov = torch.cat([discriminability_weight * d[idx, None], feats[idx]], 1)
            picks, g = greedy_select(cov, per, cov[:, 0], 1.0 if discriminability_weight else 0.0,
                                     coverage_weight, algorithm)
        else:
            f = torch.nn.functional.normalize(feats[idx], dim=1)
            picks, g = greedy_select(f @ f.T, per, d[idx], discriminability_weight,
                                     coverage_weight, algorithm)
        keep += [int(idx[p]) for p in picks]
        per_class[classes[c]] = [bank.names[int(idx[p])] for p in picks]
        gains[classes[c]] = g
    out = bank.subset(keep)
    out.metadata["selection"] = {
        "method": "labo-submodular", "score": score, "coverage": coverage, "per_class": per,
        "discriminability_weight": discriminability_weight, "coverage_weight": coverage_weight,
        "n_before": len(bank), "n_after": len(out)}
    return out, {"per_class": per_class, "gains": gains, "scores": d.tolist()}
