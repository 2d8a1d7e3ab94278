"""LaBo submodular selection: cbm.concepts.greedy_select vs apricot-select, side by side.

The problem is what LaBo's released code runs per class: ``MixtureSelection`` of a
``CustomSelection`` (sum of column 0, the scaled discriminability score) and a
``FacilityLocationSelection`` whose coverage is measured on the raw feature columns (the mixture
ignores the inner ``metric="cosine"``), with the naive greedy optimizer. Full size: 500 of
10,000 candidates with 384-d features (+1 score column).

apricot 0.6.1 needs numpy<2 and non-negative inputs, so it runs in its own environment
(``--apricot-python``, default ``/tmp/apricot-venv/bin/python``; create it with
``python -m venv /tmp/apricot-venv && /tmp/apricot-venv/bin/pip install apricot-select
"numpy<2" scikit-learn``) on non-negative features; without it, the apricot side is skipped
with the reason printed. Numba compilation is warmed up before apricot is timed.

Reports: same selected set (and order) as apricot's naive greedy, seconds, and ratios.
Writes ``benchmarks/results/select.json``. Usage: ``python benchmarks/bench_select.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _harness import timeit, write_result

APRICOT_SCRIPT = r"""
import json, sys, time
import numpy as np
from apricot import CustomSelection, FacilityLocationSelection, MixtureSelection

X = np.load(sys.argv[1]); k = int(sys.argv[2]); w = float(sys.argv[3])
def mi_based_function(X):
    return X[:, 0].sum()
def run(X, k, opt):
    sel = MixtureSelection(k, functions=[CustomSelection(k, mi_based_function),
                                         FacilityLocationSelection(k, metric="cosine")],
                           weights=np.array([1.0, w]), optimizer=opt, verbose=False)
    return sel.fit(X).ranking
run(X[:200], 5, "naive"); run(X[:200], 5, "lazy")  # numba compilation, not timed
out = {"numpy": np.__version__}
for opt in sys.argv[4].split(","):
    t = time.perf_counter(); r = run(X, k, opt)
    out[opt] = {"seconds": time.perf_counter() - t, "ranking": [int(i) for i in r]}
print(json.dumps(out))
"""


def make_problem(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Non-negative features (n, d+1); column 0 is the scaled discriminability score."""
    rng = np.random.default_rng(seed)
    feats = np.abs(rng.normal(size=(n, d))) / np.sqrt(d)
    score = rng.random(n) * 0.5
    return np.concatenate([score[:, None], feats], 1)


def run_apricot(python: str, X: np.ndarray, k: int, w: float, optimizers: str, timeout: float
                ) -> dict:
    if not Path(python).is_file():
        return {"skipped": f"apricot environment not found at {python!r} (see module docstring)"}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "X.npy", X)
        try:
            proc = subprocess.run([python, "-c", APRICOT_SCRIPT, str(Path(tmp) / "X.npy"), str(k),
                                   str(w), optimizers], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"skipped": f"apricot took longer than {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"skipped": f"apricot failed: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 of 2,000 candidates, 64-d")
    ap.add_argument("--apricot-python", default="/tmp/apricot-venv/bin/python")
    ap.add_argument("--apricot-timeout", type=float, default=900.0)
    args = ap.parse_args(argv)
    import torch

    from cbm.concepts import greedy_select

    n, d, k = (2000, 64, 100) if args.quick else (10000, 384, 500)
    w = 1.0
    X = make_problem(n, d)
    res: dict = {"config": {"n_candidates": n, "dim": d, "budget": k, "coverage_weight": w}}
    ours = {}
    for name, algo, dtype in (("torch_incremental_float64", "incremental", torch.float64),
                              ("torch_incremental_float32", "incremental", torch.float32),
                              ("torch_lazy_float64", "lazy", torch.float64),
                              ("torch_lazy_float32", "lazy", torch.float32),
                              ("torch_naive_float64", "naive", torch.float64)):
        ranking, _ = greedy_select(X, k, X[:, 0], 1.0, w, algorithm=algo, dtype=dtype)
        sec = timeit(lambda algo=algo, dtype=dtype: greedy_select(
            X, k, X[:, 0], 1.0, w, algorithm=algo, dtype=dtype), repeat=1 if algo == "naive" else 3)
        ours[name] = {"seconds": sec, "ranking": ranking}
    apr = run_apricot(args.apricot_python, X, k, w, "naive,lazy", args.apricot_timeout)
    res["apricot"] = {kk: ({x: y for x, y in v.items() if x != "ranking"} if isinstance(v, dict) else v)
                      for kk, v in apr.items()}
    for name, r in ours.items():
        res[name] = {"seconds": r["seconds"]}
        if "naive" in apr:
            ref = apr["naive"]["ranking"]
            res[name]["same_set_as_apricot_naive"] = set(r["ranking"]) == set(ref)
            res[name]["same_order_as_apricot_naive"] = r["ranking"] == ref
            res[name]["speedup_vs_apricot_naive"] = apr["naive"]["seconds"] / r["seconds"]
        if "lazy" in apr:
            res[name]["speedup_vs_apricot_lazy"] = apr["lazy"]["seconds"] / r["seconds"]
    if "naive" in apr and "lazy" in apr:
        res["apricot"]["lazy_same_set_as_naive"] = (set(apr["lazy"]["ranking"])
                                                    == set(apr["naive"]["ranking"]))
    path = write_result("select", res, quick=args.quick)
    print(json.dumps(res, indent=1))
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
