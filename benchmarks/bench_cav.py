"""CAV fitting for many concepts: cbm.concepts.fit_cavs vs PCBM's per-concept SVC(kernel="linear").

PCBM fits one ``sklearn.svm.SVC(kernel="linear")`` per concept and C value. We time, side by
side in one run on the same synthetic embeddings (concept j shifts positives along a random
direction): the PCBM loop, ``fit_cavs(method="svm")`` (same SVC, C chosen on a held-out split),
``method="linear_svm"`` (liblinear) and ``method="mean_diff"`` (FastCAV). Reports seconds,
ratios and mean validation accuracy. Writes ``benchmarks/results/cav.json``.

Usage: ``python benchmarks/bench_cav.py [--quick]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _harness import write_result


def _data(n_concepts: int, dim: int, n_pos: int, n_neg: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_concepts, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    neg = rng.normal(size=(n_neg, dim)).astype(np.float32)
    pos = {f"c{j}": (rng.normal(size=(n_pos, dim)) + 2.5 * dirs[j]).astype(np.float32)
           for j in range(n_concepts)}
    return pos, neg


def _pcbm_loop(pos, neg, C: float) -> float:
    """PCBM's learn_concept_bank: one SVC(kernel='linear') per concept (50/50 split, one C)."""
    from sklearn.svm import SVC

    accs = []
    for X in pos.values():
        n = len(X) // 2
        Xtr = np.concatenate([X[:n], neg[: len(neg) // 2]])
        ytr = np.r_[np.ones(n), np.zeros(len(neg) // 2)]
        Xva = np.concatenate([X[n:], neg[len(neg) // 2 :]])
        yva = np.r_[np.ones(len(X) - n), np.zeros(len(neg) - len(neg) // 2)]
        svm = SVC(C=C, kernel="linear").fit(Xtr, ytr)
        accs.append((svm.predict(Xva) == yva).mean())
    return float(np.mean(accs))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 concepts instead of 200")
    args = ap.parse_args(argv)
    from cbm.concepts import fit_cavs

    n_concepts, dim, n_pos, n_neg = (40 if args.quick else 200), 512, 50, 50
    pos, neg = _data(n_concepts, dim, n_pos, n_neg)
    res: dict = {"config": {"n_concepts": n_concepts, "dim": dim, "n_pos": n_pos, "n_neg": n_neg}}

    t0 = time.perf_counter()
    acc = _pcbm_loop(pos, neg, C=0.1)
    res["pcbm_svc_one_C"] = {"seconds": time.perf_counter() - t0, "mean_val_acc": acc}
    for method, cs in (("svm", (0.1,)), ("svm", (0.001, 0.01, 0.1, 1.0, 10.0)),
                       ("linear_svm", (0.1,)), ("mean_diff", (None,))):
        t0 = time.perf_counter()
        bank = fit_cavs(pos, neg, method=method, Cs=cs)
        sec = time.perf_counter() - t0
        key = f"{method}_{len(cs)}C" if method != "mean_diff" else method
        res[key] = {"seconds": sec,
                    "mean_val_acc": float(np.mean([p.detail["val_acc"] for p in bank.provenance])),
                    "speedup_vs_pcbm_svc": res["pcbm_svc_one_C"]["seconds"] / sec}
    path = write_result("cav", res, quick=args.quick)
    for k, v in res.items():
        print(k, v)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
