"""Embedding throughput: encoder alone vs EmbeddingStore cold run vs cache hit (images/s).

Data: the first N Fashion-MNIST test images (Debian's offline copy; scikit-learn digits when it
is absent), upscaled to the encoder's resolution. Writes ``benchmarks/results/embed.json``.

    python benchmarks/bench_embed.py --quick        # ~256 images, well under a minute
    python benchmarks/bench_embed.py                # 2048 images
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import write_result  # noqa: E402


def _dataset(n: int):
    from cbm.data import load_digits_images, load_fashion_mnist
    from cbm.exceptions import DataError

    try:
        return load_fashion_mnist("test", limit=n)
    except DataError:
        return load_digits_images(n)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (~256 images)")
    ap.add_argument("--n", type=int, default=None, help="number of images")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    n = args.n or (256 if args.quick else 2048)

    from cbm.encoders import create_encoder
    from cbm.store import EmbeddingStore

    ds = _dataset(n)
    enc = create_encoder(args.encoder, image_size=args.image_size, device=args.device)
    enc.encode_images([ds[0]])  # warm-up
    images = [ds[i] for i in range(len(ds))]
    t0 = time.perf_counter()
    enc.encode_images(images, batch_size=args.batch_size)
    t_encoder = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(tmp, shard_size=1024)
        cold = store.get_or_compute(enc, ds, batch_size=args.batch_size, progress=False)
        t_cold = cold.stats.seconds
        t0 = time.perf_counter()
        hit = store.get_or_compute(enc, ds, progress=False)
        X = hit.as_array()
        t_hit = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = store.get_or_compute(enc, ds, progress=False, verify="size")
        fast.as_array()
        t_hit_size = time.perf_counter() - t0
        assert hit.stats.cache_hit and X.shape == (len(ds), enc.dim)
        disk_mb = sum(f.stat().st_size for f in Path(hit.path).iterdir()) / 2**20

    payload = {
        "config": {"n_images": len(ds), "dataset": ds.name, "encoder": enc.fingerprint,
                   "batch_size": args.batch_size, "device": str(enc.device), "dim": enc.dim,
                   "load_average_1m": os.getloadavg()[0]},  # the CPU may be shared
        "encoder_only": {"seconds": t_encoder, "images_per_s": len(ds) / t_encoder},
        "store_cold": {"seconds": t_cold, "images_per_s": cold.stats.images_per_s},
        "store_hit_sha256": {"seconds": t_hit, "rows_per_s": len(ds) / t_hit},
        "store_hit_size_check": {"seconds": t_hit_size, "rows_per_s": len(ds) / t_hit_size},
        "ratios": {"store_overhead_cold_vs_encoder": t_cold / t_encoder,
                   "speedup_hit_vs_cold": t_cold / t_hit,
                   "speedup_hit_size_vs_cold": t_cold / t_hit_size},
        "disk_mb_float16": disk_mb,
    }
    path = write_result("embed", payload, quick=args.quick)
    print(f"{len(ds)} images, {enc.name} @ {args.image_size}px on {enc.device}: encoder "
          f"{payload['encoder_only']['images_per_s']:.0f} img/s, store cold "
          f"{payload['store_cold']['images_per_s']:.0f} img/s, cache hit {t_hit * 1e3:.1f} ms "
          f"({payload['ratios']['speedup_hit_vs_cold']:.0f}x faster) -> {path}")
    return payload


if __name__ == "__main__":
    main()
