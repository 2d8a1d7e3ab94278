"""Re-evaluating an edit on cached activations: rank-1 update vs full head matmul vs re-transform.

Target (issue 5): previewing an edit on 10,000 samples x 500 concepts x 10 classes in under 50 ms on
CPU, with no encoder pass. Providers, timed side by side in one run:

* ``rank1``     the logit update of one pruned weight, ``logits[:, k] -= W[k, j] * A[:, j]``;
* ``full_head`` logits from cached activations, ``A @ W.T + b`` (what any edit costs at most);
* ``preview``   :func:`cbm.edits.preview.preview` end to end (plan, update, accuracy per split/class/domain,
  changed samples) for a prune and for a remove-concept;
* ``transform`` re-running the concept layer ``model.transform(X)`` + head (what the cache avoids;
  an encoder pass would come on top).

Writes ``benchmarks/results/edit_eval.json``. ``--quick`` uses 2,000 samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import timeit, write_result  # noqa: E402

from cbm.bank import ConceptBank  # noqa: E402
from cbm.edits import Prune, RemoveConcept  # noqa: E402
from cbm.edits.preview import EvalSet, preview  # noqa: E402
from cbm.models._base import BaseConceptModel  # noqa: E402


class FixedProjection(BaseConceptModel):
    """A concept layer ``A = X V^T`` with a given linear head (no training: the head is what we time)."""

    method = "bench-projection"

    def _fit(self, X, y, V=None, W=None):
        self._V = torch.as_tensor(np.asarray(V, np.float32))
        self.base_concepts_ = ConceptBank([f"c{j}" for j in range(len(V))], vectors=V)
        self.coef_, self.intercept_ = W, np.zeros(len(W), np.float32)

    def _activations(self, X):
        return X @ self._V.T


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 samples instead of 10,000")
    args = ap.parse_args(argv)
    N, M, K, d = (2000 if args.quick else 10000), 500, 10, 512
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, d)).astype(np.float32)
    y = rng.integers(0, K, N)
    V = rng.standard_normal((M, d)).astype(np.float32) / np.sqrt(d)
    W = rng.standard_normal((K, M)).astype(np.float32)
    model = FixedProjection().fit(X[:K * 2], np.arange(K * 2) % K, V=V, W=W)
    domains = np.where(rng.random(N) < 0.5, "source", "shifted")
    es = EvalSet.from_model(model, X, y, "test", domains=domains, keep_X=False)
    A, logits = es.activations, es.logits(model)
    k, j = 3, 17

    def rank1():
        out = logits.copy()
        out[:, k] -= model.coef_[k, j] * A[:, j]
        return out

    res = {
        "shape": {"samples": N, "concepts": M, "classes": K, "dim": d},
        "seconds": {
            "rank1": timeit(rank1, repeat=20),
            "full_head": timeit(lambda: model.logits_from_activations(A), repeat=10),
            "preview_prune": timeit(lambda: preview(model, Prune(k, j), es), repeat=10),
            "preview_remove_concept": timeit(lambda: preview(model, RemoveConcept(j), es), repeat=10),
            "transform_and_head": timeit(lambda: model.logits_from_activations(model.transform(X)), repeat=3),
        },
    }
    np.testing.assert_allclose(rank1(), model.logits_from_activations(
        A, None) - np.outer(A[:, j], np.eye(K)[k]) * model.coef_[k, j], rtol=1e-4, atol=1e-4)
    s = res["seconds"]
    res["ms"] = {key: round(v * 1e3, 3) for key, v in s.items()}
    res["ratios"] = {
        "full_head / rank1": s["full_head"] / s["rank1"],
        "transform_and_head / preview_prune": s["transform_and_head"] / s["preview_prune"],
    }
    res["target_ms"] = 50.0
    res["meets_target"] = bool(s["preview_prune"] * 1e3 < 50.0)
    path = write_result("edit_eval", res, quick=args.quick)
    for key, v in res["ms"].items():
        print(f"{key:>24}: {v:9.3f} ms")
    print(f"ratios: {res['ratios']}\nwrote {path}")
    return res


if __name__ == "__main__":
    main()
