"""PCBM's sparse head: cbmkit's multinomial elastic-net path solver vs the released code's
scikit-learn ``SGDClassifier(loss="log_loss", penalty="elasticnet", l1_ratio=0.99, max_iter=10000)``.

Data: a planted problem with real structure: every class owns a few concepts (the ground-truth
sparse class-concept matrix), its samples show them strongly, everything else is noise.
Full mode: 50,000 x 1,000 concept activations, 100 classes (+10,000 held out).

The reference fits one binary one-vs-rest problem per class (what ``SGDClassifier`` does for
K > 2 classes). Those fits are independent, so in full mode only ``--ref-classes`` of them are timed
and the time is scaled by K / ref-classes (stated in the JSON); their held-out one-vs-rest accuracy
and sparsity are compared with the same classes' scores of cbmkit's model. Quick mode fits all
classes of a small problem, so multiclass accuracy is compared directly.

Each provider runs in its own interpreter (``run_isolated``) so peak memory is its own.

    python benchmarks/bench_pcbm_head.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _harness import run_isolated, write_result


def planted_problem(n: int, m: int, k: int, per_class: int = 5, n_test: int = 0, seed: int = 0,
                    signal: float = 2.0) -> dict[str, np.ndarray]:
    """Standardised concept activations with a planted sparse class-concept structure.

    Returns ``A``, ``y`` (train), ``A_test``, ``y_test`` and ``G`` (K, M) 0/1 ground truth.
    """
    rng = np.random.default_rng(seed)
    G = np.zeros((k, m), np.int8)
    for c in range(k):
        G[c, rng.choice(m, per_class, replace=False)] = 1

    def sample(size: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, size)
        A = rng.standard_normal((size, m), dtype=np.float32)
        shown = (rng.random((size, m)) < 0.8) & G[y].astype(bool)
        A += signal * shown * rng.uniform(0.5, 1.5, (size, m)).astype(np.float32)
        return A, y.astype(np.int64)

    A, y = sample(n)
    At, yt = sample(max(n_test, 1))
    mu, sd = A.mean(0), A.std(0)
    return {"A": (A - mu) / sd, "y": y, "A_test": (At - mu) / sd, "y_test": yt, "G": G}


_COMMON = """
import json, time, numpy as np, torch
from _harness import peak_rss_mb
from bench_pcbm_head import planted_problem
torch.set_num_threads({threads})
d = planted_problem({n}, {m}, {k}, n_test={n_test}, seed=0)
"""

_OURS = _COMMON + """
from cbm.solvers import elastic_net_path
A, y = torch.from_numpy(d["A"]), torch.from_numpy(d["y"])
t = time.perf_counter()
res = elastic_net_path(A, y, {lam} * 0.99, {lam} * 0.01, n_classes={k})
sec = time.perf_counter() - t
Z = torch.from_numpy(d["A_test"]) @ res.coef.T + res.intercept
W = res.coef.numpy()
sub = list(range({ref_classes}))
ovr = [float(((Z.argmax(1).numpy() == c) == (d["y_test"] == c)).mean()) for c in sub]
top = np.argsort(-W, 1)[:, :5]
recovery = float(np.mean([d["G"][c, top[c]].mean() for c in range({k})]))
print(json.dumps({{"seconds": sec, "accuracy": float((Z.argmax(1).numpy() == d["y_test"]).mean()),
    "ovr_accuracy": ovr, "nnz": int((W != 0).sum()), "nnz_subset": int((W[sub] != 0).sum()),
    "objective": res.objective, "iterations": res.n_iter, "recovery_precision_at_5": recovery,
    "peak_rss_mb": peak_rss_mb()}}))
"""

_REF = _COMMON + """
from sklearn.linear_model import SGDClassifier
classes = list(range({ref_classes}))
secs, ovr, nnz, coefs, inters = [], [], 0, [], []
for c in classes:
    clf = SGDClassifier(loss="log_loss", penalty="elasticnet", alpha={lam}, l1_ratio=0.99,
                        max_iter=10000, random_state=0)
    t = time.perf_counter()
    clf.fit(d["A"], (d["y"] == c).astype(int))
    secs.append(time.perf_counter() - t)
    coefs.append(clf.coef_[0]); inters.append(clf.intercept_[0])
S = d["A_test"] @ np.array(coefs).T + np.array(inters)
pred = S.argmax(1)
ovr = [float(((pred == c) == (d["y_test"] == c)).mean()) for c in classes] if {all_classes} else \\
      [float(((S[:, i] > 0) == (d["y_test"] == c)).mean()) for i, c in enumerate(classes)]
print(json.dumps({{"seconds_per_class": secs, "ovr_accuracy": ovr,
    "accuracy": float((pred == d["y_test"]).mean()) if {all_classes} else None,
    "nnz_subset": int((np.array(coefs) != 0).sum()), "peak_rss_mb": peak_rss_mb()}}))
"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small problem, all classes (< 1 min)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for both providers (the shared 2-core box thrashes at 2)")
    p.add_argument("--ref-classes", type=int, default=2, help="classes the reference fits (full mode)")
    p.add_argument("--lam", type=float, default=3e-3)
    args = p.parse_args(argv)
    if args.quick:
        cfg = {"n": 5000, "m": 200, "k": 10, "n_test": 2000}
        ref_classes, all_classes = cfg["k"], True
    else:
        cfg = {"n": 50000, "m": 1000, "k": 100, "n_test": 10000}
        ref_classes, all_classes = args.ref_classes, False
    fmt = {**cfg, "threads": args.threads, "lam": args.lam, "ref_classes": ref_classes,
           "all_classes": all_classes}
    env = {"OMP_NUM_THREADS": str(args.threads)}
    ours = run_isolated(_OURS.format(**fmt), env=env)
    ref = run_isolated(_REF.format(**fmt), env=env)
    ref_total = float(np.mean(ref["seconds_per_class"])) * cfg["k"]
    out = {
        "config": {**cfg, "lam": args.lam, "alpha": 0.99, "threads": args.threads,
                   "penalty": "code scaling: lam * (0.99 |W|_1 + 0.01/2 |W|^2)"},
        "cbmkit": ours,
        "sklearn_sgd": {**ref, "seconds_total_estimated": ref_total,
                        "timed_classes": ref_classes,
                        "note": ("all classes fitted" if all_classes else
                                 f"{ref_classes} of {cfg['k']} one-vs-rest fits timed; total = mean "
                                 f"per-class time x {cfg['k']} (OvR fits are independent)")},
        "speedup": ref_total / ours["seconds"],
        "ovr_accuracy_cbmkit_minus_ref": float(np.mean(ours["ovr_accuracy"]) - np.mean(ref["ovr_accuracy"])),
        "nnz_on_timed_classes": {"cbmkit": ours["nnz_subset"], "sklearn_sgd": ref["nnz_subset"]},
        "goal": ">= 100x faster at equal or better held-out accuracy and equal or greater sparsity",
    }
    path = write_result("pcbm_head" + ("_quick" if args.quick else ""), out, quick=args.quick)
    print(json.dumps({k: out[k] for k in ("speedup", "ovr_accuracy_cbmkit_minus_ref",
                                          "nnz_on_timed_classes")}, indent=2))
    print(f"ours {ours['seconds']:.2f}s acc {ours['accuracy']:.4f}; sklearn ~{ref_total:.1f}s -> {path}")
    return out


if __name__ == "__main__":
    main()
