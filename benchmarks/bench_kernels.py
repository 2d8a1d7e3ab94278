"""CPU benchmark of cbm.kernels' PyTorch paths against the eager code they replace.

Measured side by side in one run, written to ``benchmarks/results/kernels_cpu.json``:

* concept_scores vs a bare ``torch.mm`` of the same shape (goal: normalisation adds < 5%), and vs
  the plain normalise-then-matmul (fresh output and preallocated output);
* concept_scores with top-k over a float16 memmapped store (1M x 768 vs 4,096 concepts in full mode):
  peak RSS in a fresh subprocess per provider (goal < 2 GB) and throughput relative to the machine's
  matmul throughput for the same block shape (goal >= 85%); the plain version is measured at a
  smaller N and its N x M footprint extrapolated;
* gumbel_bottleneck_loss, cos3_similarity (forward + backward), elastic_net_prox and concept_search
  against their straightforward eager versions.

Usage: ``python benchmarks/bench_kernels.py [--quick]`` (--quick: small N, well under a minute).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import compare, run_isolated, write_result  # noqa: E402

from cbm.kernels import (  # noqa: E402
    concept_scores,
    concept_search,
    cos3_similarity,
    elastic_net_prox,
    gumbel_bottleneck_loss,
)


def bench_concept_scores(n: int, m: int, d: int, repeat: int) -> dict:
    x, c, bias = torch.randn(n, d), torch.randn(m, d), torch.randn(m)
    out = torch.empty(n, m)
    flops = 2.0 * n * m * d
    t = compare({
        "bare_matmul_prealloc": lambda: torch.mm(x, c.T, out=out),
        "plain_normalize_matmul_fresh": lambda: F.normalize(x, dim=1) @ F.normalize(c, dim=1).T,
        "plain_normalize_matmul_prealloc": lambda: torch.mm(
            F.normalize(x, dim=1), F.normalize(c, dim=1).T, out=out),
        "cbm_prealloc": lambda: concept_scores(x, c, out=out),
        "cbm_prealloc_scale_bias": lambda: concept_scores(x, c, scale=2.0, bias=bias, out=out),
        "cbm_fresh": lambda: concept_scores(x, c),
    }, repeat)
    bare = t["bare_matmul_prealloc"]
    return {
        "shape": {"N": n, "M": m, "d": d},
        "seconds": t,
        "matmul_gflops": flops / bare / 1e9,
        "overhead_vs_bare_matmul": {k: v / bare - 1 for k, v in t.items()},
        "goal": "cbm_prealloc overhead < 5%",
    }


_TOPK_CODE = """
import json, time, numpy as np, torch, torch.nn.functional as F
from _harness import peak_rss_mb
from cbm.kernels import concept_scores
store = np.load({path!r}, mmap_mode="r")[:{n}]
c = torch.randn({m}, {d}, generator=torch.Generator().manual_seed(0))
def mm_gflops():  # this machine's matmul throughput on the block shape, measured in this process
    xb, cb, sb = torch.randn(16384, {d}), torch.randn({m}, {d}), torch.empty(16384, {m})
    ts = []
    for _ in range(3):
        t = time.perf_counter(); torch.mm(xb, cb.T, out=sb); ts.append(time.perf_counter() - t)
    return 2.0 * 16384 * {m} * {d} / min(ts) / 1e9
before = mm_gflops()
base = peak_rss_mb()
t0 = time.perf_counter()
if {provider!r} == "cbm":
    values, idx = concept_scores(store, c, topk={k})
else:  # plain: whole store to fp32, normalise, one N x M matmul, top-k
    x = torch.from_numpy(np.asarray(store)).float()
    s = F.normalize(x, dim=1) @ F.normalize(c, dim=1).T
    values, idx = s.topk({k}, dim=1)
dt = time.perf_counter() - t0
peak = peak_rss_mb()
mm = max(before, mm_gflops())
print(json.dumps({{"seconds": dt, "peak_rss_mb": peak, "rss_before_mb": base, "matmul_gflops": mm}}))
"""


def _write_store(path: Path, n: int, d: int) -> None:
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
    rng = np.random.default_rng(0)
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        arr[start:stop] = rng.standard_normal((stop - start, d), dtype=np.float32)
    arr.flush()
    del arr


def bench_topk_stream(n: int, n_plain: int, m: int, d: int, k: int, workdir: Path) -> dict:
    path = workdir / "store.npy"
    _write_store(path, n, d)
    res = {"shape": {"N": n, "M": m, "d": d, "k": k, "store": "float16 memmap"}}
    for provider, rows_n in (("cbm", n), ("plain", n_plain)):
        code = _TOPK_CODE.format(path=str(path), n=rows_n, m=m, d=d, k=k, provider=provider)
        r = run_isolated(code)
        r["N"] = rows_n
        r["gflops"] = 2.0 * rows_n * m * d / r["seconds"] / 1e9
        # against the best of two matmul measurements in the same process (before/after the run)
        r["fraction_of_matmul_throughput"] = r["gflops"] / r["matmul_gflops"]
        res[provider] = r
    plain_bytes_full = n * m * 4 + n * d * 4  # N x M fp32 scores + fp32 copy of the store
    res["plain_extrapolated_peak_gb_at_N"] = (
        plain_bytes_full / 2**30 + res["plain"]["rss_before_mb"] / 1024
    )
    res["goal"] = "cbm peak_rss_mb < 2048 and fraction_of_matmul_throughput >= 0.85"
    path.unlink()
    return res


def bench_training_ops(b: int, m: int, k_classes: int, repeat: int) -> dict:
    logits = torch.randn(b, m, requires_grad=True)

    def gumbel_eager():
        loss = 0.5 * sum(
            -torch.log(F.gumbel_softmax(logits, tau=1.0, dim=dim)).mean() for dim in (0, 1))
        loss.backward()

    def gumbel_cbm():
        gumbel_bottleneck_loss(logits, tau=1.0).backward()

    a, t = torch.randn(b, m, requires_grad=True), torch.randn(b, m)

    def cos3_eager():  # Label-free CBM's cos_similarity_cubed_single
        u = (a - a.mean(0, keepdim=True)) ** 3
        v = (t - t.mean(0, keepdim=True)) ** 3
        u = u / torch.norm(u, p=2, dim=0, keepdim=True)
        v = v / torch.norm(v, p=2, dim=0, keepdim=True)
        (-(u * v).sum(0).mean()).backward()

    def cos3_cbm():
        (-cos3_similarity(a, t).mean()).backward()

    w, g = torch.randn(k_classes, m), torch.randn(k_classes, m)
    lr, l1, l2 = 0.1, 1e-3, 1e-2

    def prox_eager():
        x = w - lr * g
        return torch.sign(x) * torch.clamp(x.abs() - lr * l1, min=0) / (1 + lr * l2)

    out = torch.empty_like(w)
    pairs = {
        "gumbel_bottleneck_loss_fwd_bwd": (gumbel_eager, gumbel_cbm, (b, m)),
        "cos3_similarity_fwd_bwd": (cos3_eager, cos3_cbm, (b, m)),
        "elastic_net_prox": (prox_eager, lambda: elastic_net_prox(w, g, lr, l1, l2, out=out),
                             (k_classes, m)),
    }
    res = {}
    for name, (eager, ours, shape) in pairs.items():
        tt = compare({"eager": eager, "cbm": ours}, repeat)
        te, tc = tt["eager"], tt["cbm"]
        res[name] = {"shape": shape, "eager_s": te, "cbm_s": tc, "speedup": te / tc}
    return res


def bench_search(n: int, d: int, repeat: int) -> dict:
    store = torch.randn(n, d).half()
    query = torch.randn(2, d)

    def plain():
        s = F.normalize(store.float(), dim=1) @ F.normalize(query, dim=1).T
        return (s @ torch.tensor([1.0, -1.0])).topk(10)

    tt = compare({"plain": plain,
                  "cbm": lambda: concept_search(store, query, weights=[1, -1], topk=10)}, repeat)
    te, tc = tt["plain"], tt["cbm"]
    return {"shape": {"N": n, "d": d, "query": "A and not B"}, "plain_s": te, "cbm_s": tc,
            "speedup": te / tc}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes; well under a minute")
    args = p.parse_args(argv)
    q = args.quick
    torch.manual_seed(0)
    results: dict = {}
    print("concept_scores vs matmul ...", flush=True)
    results["concept_scores"] = bench_concept_scores(10_000 if q else 100_000, 4000, 512, 3)
    print("concept_scores top-k streaming ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results["concept_scores_topk"] = bench_topk_stream(
            20_000 if q else 1_000_000, 10_000 if q else 50_000, 4096, 768, 10, Path(tmp))
    print("training ops ...", flush=True)
    results["training_ops"] = bench_training_ops(256, 1024 if q else 4096, 200, 5)
    print("concept_search ...", flush=True)
    results["concept_search"] = bench_search(20_000 if q else 200_000, 768, 3)
    path = write_result("kernels_cpu", results, quick=q)
    _summary(results)
    print(f"wrote {path}")
    return results


def _summary(r: dict) -> None:
    cs = r["concept_scores"]
    print(f"matmul {cs['matmul_gflops']:.1f} GFLOP/s; overhead vs bare matmul:")
    for k, v in cs["overhead_vs_bare_matmul"].items():
        print(f"  {k:34s} {100 * v:+6.1f}%")
    tk = r["concept_scores_topk"]
    for prov in ("cbm", "plain"):
        x = tk[prov]
        print(f"topk {prov:5s} N={x['N']:>8d}: {x['seconds']:.1f}s peak {x['peak_rss_mb']:.0f} MB, "
              f"{100 * x['fraction_of_matmul_throughput']:.0f}% of matmul throughput")
    print(f"plain top-k extrapolated to full N: {tk['plain_extrapolated_peak_gb_at_N']:.1f} GB")
    for k, v in r["training_ops"].items():
        print(f"{k:34s} eager {1e3 * v['eager_s']:.1f} ms, cbm {1e3 * v['cbm_s']:.1f} ms "
              f"(x{v['speedup']:.2f})")
    s = r["concept_search"]
    print(f"concept_search N={s['shape']['N']}: plain {s['plain_s']:.3f}s, cbm {s['cbm_s']:.3f}s")


if __name__ == "__main__":
    main()
