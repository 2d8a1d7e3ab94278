"""GPU benchmark of every cbm.kernels op: Triton vs PyTorch eager vs torch.compile vs roofline.

For the headline shape (N=1M images, M=4,096 concepts, d=768, fp16 embeddings) and training-sized
losses, each op is timed per provider, and compared with its roofline floor:
``max(FLOPs / measured matmul throughput, bytes moved / measured copy bandwidth)``, both measured
on this GPU in the same run. Parity against a float64 reference (and against the PyTorch path) is
checked first on ragged shapes. Then the Concept-Centric Transformer's seconds per epoch (issue 15)
and MobileNetV2's embedding throughput at 96 and 224 px (the per-image cost of the README's
100-million-image projection, issue 17). Results go to ``benchmarks/results/gpu.json``.

Usage: ``python benchmarks/gpu_all.py [--quick] [--no-compile]``. Needs CUDA; takes a few minutes
(``--quick``: N=100k, well under a minute plus compile time). Also runnable: ``pytest tests/kernels``
on the GPU machine runs the full Triton parity suite on CUDA.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import timeit, write_result  # noqa: E402

DEV = "cuda"  # --smoke-cpu switches to "cpu" to check the script logic on a machine without GPU


def _measure_machine() -> dict:
    a = torch.randn(8192, 8192, device=DEV, dtype=torch.float16)
    t = timeit(lambda: a @ a, repeat=10, warmup=3)
    big = torch.empty(2**30, dtype=torch.uint8, device=DEV)  # 1 GiB
    dst = torch.empty_like(big)
    tc = timeit(lambda: dst.copy_(big), repeat=10, warmup=3)
    return {"matmul_fp16_tflops": 2 * 8192**3 / t / 1e12, "copy_bandwidth_gbs": 2 * 2**30 / tc / 1e9}


def _floor(machine: dict, flops: float, nbytes: float) -> dict:
    tf = flops / (machine["matmul_fp16_tflops"] * 1e12)
    tb = nbytes / (machine["copy_bandwidth_gbs"] * 1e9)
    return {"flops": flops, "bytes": nbytes, "floor_s": max(tf, tb),
            "bound": "compute" if tf >= tb else "memory"}


def _providers(fns: dict, floor: dict, repeat: int) -> dict:
    out = {"roofline": floor}
    for name, fn in fns.items():
        if fn is None:
            continue
        try:
            torch.cuda.reset_peak_memory_stats()
            s = timeit(fn, repeat=repeat, warmup=2)
            out[name] = {"seconds": s, "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
                         "fraction_of_roofline": floor["floor_s"] / s}
        except Exception as e:  # noqa: BLE001 - a failing provider is a result, not a crash
            out[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        torch.cuda.empty_cache()
    return out


def _compiled(fn, enabled: bool):
    return torch.compile(fn) if enabled else None


def parity_checks() -> dict:
    """Triton on CUDA vs a float64 reference on ragged shapes; max abs error per op."""
    from cbm.kernels import (
        concept_scores,
        concept_search,
        cos3_similarity,
        elastic_net_prox,
        gumbel_bottleneck_loss,
    )
    from cbm.kernels.concept_scores import concept_scores_reference
    from cbm.kernels.cos3 import cos3_reference
    from cbm.kernels.elastic_net import elastic_net_prox_reference
    from cbm.kernels.gumbel_loss import gumbel_loss_reference, sample_gumbel_noise

    dev, res = DEV, {}
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        x = torch.randn(1000, 771, device=dev).to(dt)
        c = torch.randn(333, 771, device=dev).to(dt)
        b = torch.randn(333, device=dev)
        out = torch.full((1000, 333), float("nan"), device=dev)
        got = concept_scores(x, c, scale=3.0, bias=b, out=out)
        res[f"concept_scores_{dt}"] = (got.double() - concept_scores_reference(x, c, 3.0, b)).abs().max().item()
        v, _ = concept_scores(x, c, topk=7)
        ref = concept_scores_reference(x, c).topk(7, dim=1).values
        res[f"concept_scores_topk_{dt}"] = (v.double() - ref).abs().max().item()
        logits = (3 * torch.randn(257, 1001, device=dev)).to(dt).requires_grad_()
        noise = sample_gumbel_noise((257, 1001), device=dev)
        loss = gumbel_bottleneck_loss(logits, 0.5, noise=noise)
        loss.backward()
        l64 = logits.detach().double().requires_grad_()
        ref = gumbel_loss_reference(l64, noise, 0.5)
        ref.backward()
        res[f"gumbel_loss_{dt}"] = abs(loss.item() - ref.item())
        res[f"gumbel_grad_{dt}"] = (logits.grad.double() - l64.grad).abs().max().item()
        a = torch.randn(513, 777, device=dev).to(dt).requires_grad_()
        bb = torch.randn(513, 777, device=dev).to(dt).requires_grad_()
        cos3_similarity(a, bb).sum().backward()
        a64, b64 = (t.detach().double().requires_grad_() for t in (a, bb))
        r = cos3_reference(a64, b64)
        r.sum().backward()
        res[f"cos3_{dt}"] = (cos3_similarity(a, bb).double() - r).abs().max().item()
        res[f"cos3_grad_{dt}"] = (a.grad.double() - a64.grad).abs().max().item()
        w, g = torch.randn(1001, 333, device=dev).to(dt), torch.randn(1001, 333, device=dev).to(dt)
        got = elastic_net_prox(w, g, 0.1, 1.0, 0.5, out=torch.full_like(w, float("nan")))
        res[f"elastic_net_{dt}"] = (got.double() - elastic_net_prox_reference(w, g, 0.1, 1.0, 0.5)).abs().max().item()
    store = torch.randn(100_003, 768, device=dev).half()
    q = torch.randn(2, 768, device=dev)
    s, i = concept_search(store, q, weights=[1, -1], topk=10, block_size=30_000)
    ref = concept_scores_reference(store, q) @ torch.tensor([1.0, -1.0], device=dev, dtype=torch.float64)
    res["concept_search"] = (s.double() - ref.topk(10).values.cpu()).abs().max().item()
    return res


def bench_concept_scores(machine, n, m, d, repeat, compile_):
    from cbm.kernels import concept_scores
    x = torch.randn(n, d, device=DEV, dtype=torch.float16)
    c = torch.randn(m, d, device=DEV, dtype=torch.float16)
    bias = torch.randn(m, device=DEV)
    bufs = {"out": torch.empty(n, m, device=DEV)}

    def eager():
        return (F.normalize(x, dim=1) @ F.normalize(c, dim=1).T).float() * 2.0 + bias

    def eager_topk():
        return eager().topk(10, dim=1)

    floor = _floor(machine, 2.0 * n * m * d, 2 * (n + m) * d + 4 * n * m + 4 * m)
    res = {"shape": {"N": n, "M": m, "d": d, "dtype": "float16", "out": "float32"}}
    res["scores"] = _providers({
        "cublas_bare_matmul_fp16": lambda: torch.mm(x, c.T),
        "triton": lambda: concept_scores(x, c, scale=2.0, bias=bias, out=bufs["out"]),
        "eager": eager,
        "torch_compile": _compiled(eager, compile_),
    }, floor, repeat)
    bufs.clear()
    torch.cuda.empty_cache()
    floor_k = _floor(machine, 2.0 * n * m * d, 2 * (n + m) * d + 2 * n * 10 * 8)
    res["topk10"] = _providers({
        "triton": lambda: concept_scores(x, c, scale=2.0, bias=bias, topk=10),
        "eager": eager_topk,
        "torch_compile": _compiled(eager_topk, compile_),
    }, floor_k, repeat)
    return res


def bench_losses(machine, b, m, repeat, compile_):
    from cbm.kernels import cos3_similarity, elastic_net_prox, gumbel_bottleneck_loss
    from cbm.kernels.gumbel_loss import sample_gumbel_noise
    logits = torch.randn(b, m, device=DEV, requires_grad=True)
    noise = sample_gumbel_noise((b, m), device=DEV)

    def gumbel_eager():  # released code, with the same explicit noise
        z = [(logits + noise[d]) for d in (0, 1)]
        loss = 0.5 * sum(-torch.log(torch.softmax(z[d], dim=d)).mean() for d in (0, 1))
        loss.backward()

    def gumbel_triton():
        gumbel_bottleneck_loss(logits, noise=noise).backward()

    a = torch.randn(b, m, device=DEV, requires_grad=True)
    t = torch.randn(b, m, device=DEV)

    def cos3_eager():
        u = (a - a.mean(0, keepdim=True)) ** 3
        v = (t - t.mean(0, keepdim=True)) ** 3
        u = u / torch.norm(u, p=2, dim=0, keepdim=True)
        v = v / torch.norm(v, p=2, dim=0, keepdim=True)
        (u * v).sum(0).mean().backward()

    def cos3_triton():
        cos3_similarity(a, t).mean().backward()

    w, g = torch.randn(b, m, device=DEV), torch.randn(b, m, device=DEV)
    out = torch.empty_like(w)

    def prox_eager():
        x = w - 0.1 * g
        return torch.sign(x) * torch.clamp(x.abs() - 1e-3, min=0) / 1.001

    bm4 = 4.0 * b * m
    return {
        "shape": {"B": b, "M": m, "dtype": "float32"},
        "gumbel_bottleneck_loss_fwd_bwd": _providers({
            "triton": gumbel_triton, "eager": gumbel_eager,
            "torch_compile": _compiled(gumbel_eager, compile_)}, _floor(machine, 0, 7 * bm4), repeat),
        "cos3_similarity_fwd_bwd": _providers({
            "triton": cos3_triton, "eager": cos3_eager,
            "torch_compile": _compiled(cos3_eager, compile_)}, _floor(machine, 0, 5 * bm4), repeat),
        "elastic_net_prox": _providers({
            "triton": lambda: elastic_net_prox(w, g, 0.1, 1e-2, 1e-2, out=out), "eager": prox_eager,
            "torch_compile": _compiled(prox_eager, compile_)}, _floor(machine, 0, 3 * bm4), repeat),
    }


def bench_search(machine, n, d, repeat):
    from cbm.kernels import concept_search
    store = torch.randn(n, d, device=DEV, dtype=torch.float16)
    q = torch.randn(2, d, device=DEV)

    def eager():
        s = F.normalize(store.float(), dim=1) @ F.normalize(q, dim=1).T
        return (s @ torch.tensor([1.0, -1.0], device=DEV)).topk(10)

    return {"shape": {"N": n, "d": d}, **_providers({
        "triton": lambda: concept_search(store, q, weights=[1, -1], topk=10, block_size=2**20),
        "eager": eager}, _floor(machine, 2.0 * n * d, 2.0 * n * d), repeat)}


def bench_cct_epoch(n: int = 2000, tokens: int = 49, d: int = 1280, epochs: int = 3) -> dict:
    """Concept-Centric Transformer training on random (n, tokens, d) patch tokens: seconds per epoch
    on this GPU (the CPU figure comes from bench_cct.py)."""
    import time

    import numpy as np

    from cbm.bank import ConceptBank
    from cbm.models import create_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, tokens, d)).astype(np.float32)
    y = rng.integers(0, 10, n)
    bank = ConceptBank([f"c{i}" for i in range(62)], [f"concept {i}" for i in range(62)])
    labels = (rng.random((n, 62)) < 0.3).astype(np.float32)
    model = create_model("cct", concepts=bank, max_epochs=epochs, patience=epochs, device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.fit(X, y, concept_labels=labels)
    torch.cuda.synchronize()
    return {"s_per_epoch_cuda": (time.perf_counter() - t) / model.n_iter_,
            "shape": {"N": n, "T": tokens, "d": d, "concepts": 62}}


def bench_embed(image_size: int, n: int = 4096, batch_size: int = 256) -> dict:
    """MobileNetV2 embedding throughput (images/s) on this GPU, the per-image cost behind the
    README's 100-million-image projection (issue 17); images are random uint8 28 x 28."""
    import time

    import numpy as np

    from cbm.encoders import create_encoder

    enc = create_encoder("mobilenet_v2", image_size=image_size, device="cuda")
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    enc.encode_images(images[:batch_size], batch_size=batch_size)  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    enc.encode_images(images, batch_size=batch_size)
    torch.cuda.synchronize()
    s = time.perf_counter() - t
    return {"image_size": image_size, "n": n, "batch_size": batch_size, "images_per_s": n / s,
            "ms_per_image": 1e3 * s / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N=100k instead of 1M")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile provider")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--smoke-cpu", action="store_true",
                   help="tiny shapes on CPU (PyTorch path) to check the script itself; no JSON")
    args = p.parse_args(argv)
    if args.smoke_cpu:
        return _smoke_cpu()
    if not torch.cuda.is_available():
        print("gpu_all.py needs a CUDA GPU and none is visible (torch.cuda.is_available() is False). "
              "Run it on a GPU machine; CPU numbers come from benchmarks/bench_kernels.py.")
        return 2
    os.environ.pop("CBM_KERNELS", None)  # auto: Triton on CUDA
    torch.manual_seed(0)
    n = 100_000 if args.quick else 1_000_000
    compile_ = not args.no_compile
    results = {"device": torch.cuda.get_device_name(0)}
    print("measuring matmul throughput and bandwidth ...", flush=True)
    results["machine"] = machine = _measure_machine()
    print(machine, flush=True)
    print("parity ...", flush=True)
    results["parity_max_abs_err"] = parity_checks()
    print(results["parity_max_abs_err"], flush=True)
    print("concept_scores ...", flush=True)
    results["concept_scores"] = bench_concept_scores(machine, n, 4096, 768, args.repeat, compile_)
    print("losses ...", flush=True)
    results["training_ops"] = bench_losses(machine, 8192, 4096, args.repeat, compile_)
    print("concept_search ...", flush=True)
    results["concept_search"] = bench_search(machine, 4 * n, 768, args.repeat)
    for name, fn in (("cct_epoch", bench_cct_epoch), ("embed_96px", lambda: bench_embed(96)),
                     ("embed_224px", lambda: bench_embed(224))):
        print(f"{name} ...", flush=True)
        try:  # one failing extra never costs the kernel numbers above
            results[name] = fn()
        except Exception as e:  # noqa: BLE001
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        print(results[name], flush=True)
    path = write_result("gpu", results, quick=args.quick)
    print(f"wrote {path}")
    return 0


def _smoke_cpu() -> int:
    global DEV
    DEV = "cpu"
    torch.cuda.reset_peak_memory_stats = lambda: None
    torch.cuda.max_memory_allocated = lambda: 0
    torch.cuda.empty_cache = lambda: None
    machine = {"matmul_fp16_tflops": 1e-3, "copy_bandwidth_gbs": 1.0}
    print(parity_checks())
    print(bench_concept_scores(machine, 300, 64, 32, 1, False)["scores"]["triton"])
    print(bench_losses(machine, 64, 32, 1, False)["cos3_similarity_fwd_bwd"]["triton"])
    print(bench_search(machine, 1000, 32, 1)["triton"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
