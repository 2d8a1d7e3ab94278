"""LF-CBM's sparse final layer: cbmkit's elastic-net path solver vs the ``glm-saga`` package.

Objective (glm-saga's): ``mean CE + lam * (alpha |W|_1 + (1 - alpha)/2 |W|^2)``, alpha 0.99,
lam 7e-4, on standardised activations with a planted sparse class-concept structure
(:func:`bench_pcbm_head.planted_problem`). Full mode: 50,000 x 1,000, 100 classes.

glm-saga runs as LF-CBM runs it: SAGA, batch 256, step 0.1, its own stopping rule (tol 1e-4),
at most ``--saga-epochs`` epochs. Both objectives are evaluated by the same float64 function;
the goal is cbmkit's objective <= glm-saga's + 1e-3 at >= 30x less time. Also timed: a plain
full-batch FISTA (no path, no screening) to show what the path and screening add.

glm-saga is not a cbmkit dependency: install it anywhere importable, e.g.
``pip install --target /tmp/glmsaga glm-saga`` and pass ``--glm-saga-path /tmp/glmsaga``.
When it cannot be imported the reference is skipped with the reason printed and stored.

    python benchmarks/bench_lf_cbm.py [--quick] [--threads 1] [--glm-saga-path DIR]
"""

from __future__ import annotations

import argparse
import json
import os

from _harness import run_isolated, write_result

_COMMON = """
import json, sys, time, numpy as np, torch
sys.path.insert(0, {glm_path!r})
from _harness import peak_rss_mb
from bench_pcbm_head import planted_problem
from cbm.solvers import objective
torch.set_num_threads({threads})
d = planted_problem({n}, {m}, {k}, n_test=1, seed=1)
A, y = torch.from_numpy(d["A"]), torch.from_numpy(d["y"])
lam, alpha = {lam}, 0.99
"""

_OURS = _COMMON + """
from cbm.solvers import elastic_net_path, fista
t = time.perf_counter()
if {plain}:
    res = fista(A, y, lam * alpha, lam * (1 - alpha), n_classes={k}, max_iter=5000)
else:
    res = elastic_net_path(A, y, lam * alpha, lam * (1 - alpha), n_classes={k})
sec = time.perf_counter() - t
print(json.dumps({{"seconds": sec, "objective": objective(A, y, res.coef, res.intercept, lam * alpha,
    lam * (1 - alpha)), "nnz": res.nnz, "iterations": res.n_iter, "peak_rss_mb": peak_rss_mb()}}))
"""

_SAGA = _COMMON + """
from glm_saga.elasticnet import IndexedTensorDataset, train_saga
loader = torch.utils.data.DataLoader(IndexedTensorDataset(A, y), batch_size=256, shuffle=True,
                                     generator=torch.Generator().manual_seed(0))
linear = torch.nn.Linear({m}, {k})
torch.nn.init.zeros_(linear.weight); torch.nn.init.zeros_(linear.bias)
t = time.perf_counter()
train_saga(linear, loader, 0.1, {epochs}, lam, alpha, group=False, n_ex=len(A), n_classes={k},
           tol=1e-4, verbose=None, logger=lambda *a: None)
sec = time.perf_counter() - t
W, b = linear.weight.detach(), linear.bias.detach()
print(json.dumps({{"seconds": sec, "objective": objective(A, y, W, b, lam * alpha, lam * (1 - alpha)),
    "nnz": int((W != 0).sum()), "epochs_max": {epochs}, "peak_rss_mb": peak_rss_mb()}}))
"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small problem (< 1 min)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for every provider (the shared 2-core box thrashes at 2)")
    p.add_argument("--lam", type=float, default=7e-4)
    p.add_argument("--saga-epochs", type=int, default=None, help="glm-saga epoch cap (default 1000 / 30 quick)")
    p.add_argument("--glm-saga-path", default=os.environ.get("GLM_SAGA_PATH", "/tmp/glmsaga_target"))
    args = p.parse_args(argv)
    cfg = {"n": 5000, "m": 200, "k": 10} if args.quick else {"n": 50000, "m": 1000, "k": 100}
    epochs = args.saga_epochs or (30 if args.quick else 1000)
    fmt = {**cfg, "threads": args.threads, "lam": args.lam, "glm_path": args.glm_saga_path,
           "epochs": epochs}
    env = {"OMP_NUM_THREADS": str(args.threads)}
    ours = run_isolated(_OURS.format(plain=False, **fmt), env=env)
    plain = run_isolated(_OURS.format(plain=True, **fmt), env=env)
    out = {"config": {**cfg, "lam": args.lam, "alpha": 0.99, "threads": args.threads},
           "cbmkit_path": ours, "cbmkit_plain_fista": plain,
           "goal": ">= 30x faster than glm-saga at objective <= glm-saga's + 1e-3"}
    try:
        saga = run_isolated(_SAGA.format(**fmt), env=env, timeout=3600)
    except RuntimeError as e:
        saga = None
        out["glm_saga"] = {"skipped": f"glm-saga could not run: {str(e).strip().splitlines()[-1]}"}
        print(out["glm_saga"]["skipped"])
    if saga is not None:
        out["glm_saga"] = saga
        out["speedup_path"] = saga["seconds"] / ours["seconds"]
        out["speedup_plain_fista"] = saga["seconds"] / plain["seconds"]
        out["objective_cbmkit_minus_glm_saga"] = ours["objective"] - saga["objective"]
        out["objective_within_1e-3"] = ours["objective"] <= saga["objective"] + 1e-3
    path = write_result("lf_cbm" + ("_quick" if args.quick else ""), out, quick=args.quick)
    print(json.dumps({k: v for k, v in out.items() if k != "config"}, indent=2))
    print(f"-> {path}")
    return out


if __name__ == "__main__":
    main()
