"""Sparse-CBM training throughput: cached concept scores vs re-encoding concept texts every batch.

cbmkit's ``SparseCBM`` scores images against the bank's text embeddings once per fit; the released
training loop runs the text tower over every concept text in every batch. This script times both
on the same data (a MiniLM-embedded synthetic concept world, Gumbel objective) and writes
samples/s, the speed-up and peak memory to ``benchmarks/results/sparse_cbm.json``.

    python benchmarks/bench_sparse_cbm.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cbm.data import make_concept_world
from cbm.encoders import create_encoder
from cbm.losses import gumbel_loss
from cbm.models.sparse_cbm import SparseCBM

RESULTS = Path(__file__).resolve().parent / "results" / "sparse_cbm.json"


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_epoch(encoder, texts, X, y, batch_size, device, logit_scale=100.0) -> float:
    """One epoch of the released-style loop: concept texts re-encoded in every batch. Returns seconds."""
    M, K = len(texts), int(y.max()) + 1
    cbl = torch.nn.Linear(M, M, bias=False).to(device)
    head = torch.nn.Linear(M, K, bias=False).to(device)
    opt_c, opt_h = torch.optim.Adam(cbl.parameters(), 1e-3), torch.optim.Adam(head.parameters(), 1e-2)
    start = time.perf_counter()
    for idx in torch.randperm(len(X)).split(batch_size):
        with torch.no_grad():
            T = torch.as_tensor(encoder.encode_text(texts), device=device)
        s = logit_scale * F.normalize(X[idx], dim=1) @ F.normalize(T, dim=1).T
        z = cbl(s)
        loss = gumbel_loss(z) + F.cross_entropy(head(z), y[idx])
        opt_c.zero_grad()
        opt_h.zero_grad()
        loss.backward()
        opt_c.step()
        opt_h.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, finishes in seconds")
    ap.add_argument("--out", default=None, help="JSON path (default: results/sparse_cbm[_quick].json)")
    args = ap.parse_args(argv)
    n, m, epochs, bs = (600, 24, 3, 128) if args.quick else (3000, 48, 5, 256)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = create_encoder("minilm")
    world = make_concept_world(n_classes=8, n_concepts=m, n_samples=n, text_encoder=encoder, random_state=0)
    tr = world["train"]
    X, y = torch.as_tensor(tr.X, device=device), torch.as_tensor(tr.y, device=device)

    t = time.perf_counter()
    SparseCBM(concepts=world.bank, max_epochs=epochs, batch_size=bs, device=str(device)).fit(tr.X, tr.y)
    cached_s = time.perf_counter() - t
    cached_peak = _peak_mb(device)

    naive_s = sum(naive_epoch(encoder, world.bank.texts, X, y, bs, device) for _ in range(epochs))
    naive_peak = _peak_mb(device)

    result = {
        "benchmark": "sparse_cbm_epoch",
        "config": {"n_train": len(tr.y), "n_concepts": m, "dim": int(tr.X.shape[1]), "epochs": epochs,
                   "batch_size": bs, "objective": "gumbel", "text_encoder": encoder.fingerprint,
                   "quick": args.quick},
        "device": str(device),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "cached_scores": {"seconds": cached_s, "samples_per_s": len(tr.y) * epochs / cached_s,
                          "peak_mb": cached_peak},
        "reencode_per_batch": {"seconds": naive_s, "samples_per_s": len(tr.y) * epochs / naive_s,
                               "peak_mb": naive_peak},
        "speedup": naive_s / cached_s,
        "note": "peak_mb on CPU is the process max RSS (cumulative); on CUDA max_memory_allocated.",
    }
    out = Path(args.out) if args.out else RESULTS.with_name(f"sparse_cbm{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("cached_scores", "reencode_per_batch", "speedup")}, indent=2))
    return result


if __name__ == "__main__":
    main()
