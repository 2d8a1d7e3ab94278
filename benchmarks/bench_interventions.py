"""Intervention curves: vectorised (one (N, K) update per k over all images) vs a per-image loop.

Target (issue 16): curves for 10,000 images x 500 concepts x 10 classes, every k = 0..500, three
policies (random, uncertainty, coop), in under 5 s on 2 CPU cores. Providers:

* ``vectorised``  :func:`cbm.research.interventions.intervention_curves` end to end (orders + curves);
* ``per_image``   the reference loop ``_curve_per_sample`` (one image, one k at a time through
  ``logits_from_activations``), timed on ``--ref-samples`` images and a k grid, then scaled to all
  images and all k (it is linear in both); its curve is checked against the vectorised one.

Writes ``benchmarks/results/interventions.json``. ``--quick`` uses 2,000 images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import timeit, write_result  # noqa: E402
from bench_edit_eval import FixedProjection  # noqa: E402

from cbm.research.interventions import (  # noqa: E402
    _class_positions,
    _curve_per_sample,
    intervention_curves,
    intervention_order,
    intervention_values,
)

POLICIES = ("random", "uncertainty", "coop")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 images instead of 10,000")
    ap.add_argument("--ref-samples", type=int, default=10, help="images timed in the per-image loop")
    args = ap.parse_args(argv)
    N, M, K, d = (2000 if args.quick else 10000), 500, 10, 64
    rng = np.random.default_rng(0)
    truth = (rng.random((N, M)) < 0.2).astype(np.float32)
    truth[rng.random((N, M)) < 0.1] = np.nan  # some labels unknown
    V = rng.standard_normal((M, d)).astype(np.float32) / np.sqrt(d)
    X = (np.nan_to_num(truth) @ V + 0.5 * rng.standard_normal((N, d))).astype(np.float32)
    W = rng.standard_normal((K, M)).astype(np.float32) * (rng.random((K, M)) < 0.1)
    y = (np.nan_to_num(truth) @ W.T).argmax(1)
    model = FixedProjection().fit(X[:K * 2], np.arange(K * 2) % K, V=V, W=W)
    A = model.transform(X)

    def vectorised():
        return intervention_curves(model, y=y, truth=truth, activations=A, policies=POLICIES)

    t_vec = timeit(vectorised, repeat=3, warmup=1)
    c0 = time.process_time()
    curves = vectorised()
    cpu_vec = time.process_time() - c0  # CPU seconds: what the run costs when it has the cores to itself

    # per-image reference on a few images, every k, one policy; scaled linearly to N images x policies
    n_ref = min(args.ref_samples, N)
    off, on = intervention_values(A)
    pred = model.logits_from_activations(A).argmax(1)
    order = intervention_order("uncertainty", A, model.coef_, pred, truth, off, on)
    sub = slice(0, n_ref)
    kmax = len(curves.k) - 1
    t0 = time.perf_counter()
    ref = _curve_per_sample(model, A[sub], None, _class_positions(model, y[sub]), truth[sub], order[sub], off, on,
                            kmax=kmax)
    t_ref_part = time.perf_counter() - t0
    t_ref = t_ref_part / n_ref * N * len(POLICIES)
    sub_curves = intervention_curves(model, y=y[sub], truth=truth[sub], activations=A[sub],
                                     policies=["uncertainty"], values=(off, on))
    n = len(sub_curves.k)
    np.testing.assert_allclose(sub_curves.accuracy["uncertainty"], ref[:n], atol=1e-9)
    k_total = len(curves.k)

    res = {
        "shape": {"samples": N, "concepts": M, "classes": K, "k_values": k_total, "policies": list(POLICIES)},
        "seconds": {"vectorised": t_vec, "vectorised_cpu": cpu_vec, "per_image_estimated": t_ref},
        "load_average_1min": os.getloadavg()[0],
        "per_image_measured": {"samples": n_ref, "k": f"0..{kmax}", "policies": 1, "seconds": t_ref_part},
        "speedup": t_ref / t_vec,
        "areas": {p: curves.area(p) for p in POLICIES},
        "reference_matches": True,
        "target_s": 5.0,
        "meets_target": bool(t_vec < 5.0),
        "meets_target_cpu_time": bool(cpu_vec < 5.0),
    }
    path = write_result("interventions", res, quick=args.quick)
    print(f"vectorised: {t_vec:.2f} s wall, {cpu_vec:.2f} s CPU (load {os.getloadavg()[0]:.1f}) for {N} x {M} x {K}, k = 0..{k_total - 1}, {len(POLICIES)} policies "
          f"(target 5 s); per-image loop estimated {t_ref:.0f} s ({res['speedup']:.0f}x)")
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
