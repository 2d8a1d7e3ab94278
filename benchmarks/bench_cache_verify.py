"""What integrity checks cost when an embedding cache is opened, each in a fresh process.

One cache entry of N rows x d (float16 shards) is opened with ``verify="size"`` (sizes only),
``verify=True`` (sha256 of every file, every time) and the default ``verify="auto"`` twice: the
first open hashes and stamps ``verified.json``, the second trusts the stamp for unchanged files.
Writes ``benchmarks/results/cache_verify.json``.

    python benchmarks/bench_cache_verify.py --quick     # 20,000 x 768
    python benchmarks/bench_cache_verify.py             # 200,000 x 768 (about 300 MB)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run_isolated, write_result  # noqa: E402

OPEN = """
import json, time
from cbm.store import EmbeddingCache
t0 = time.perf_counter()
EmbeddingCache({path!r}, verify={verify!r})
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""


def _make_entry(root: Path, n: int, dim: int) -> Path:
    import numpy as np
    import torch

    from cbm.data import ImageDataset
    from cbm.encoders import Encoder
    from cbm.store import EmbeddingStore

    class Rows(Encoder):
        name, fingerprint = "rows", f"rows|{dim}"

        def __init__(self) -> None:
            self.device, self.dim = torch.device("cpu"), dim
            self.W = torch.randn(1, dim)

        def preprocess(self, image):
            return torch.from_numpy(np.asarray(image, np.float32)[:1, :1, 0])[None]

        def _encode_batch(self, x):
            return x[:, 0].reshape(len(x), 1) @ self.W

    images = np.random.default_rng(0).integers(0, 255, (n, 1, 1), dtype=np.uint8)
    cache = EmbeddingStore(root, shard_size=16384).get_or_compute(
        Rows(), ImageDataset(images=images, name="rows"), batch_size=4096, progress=False)
    return cache.path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 rows")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--dim", type=int, default=768)
    args = ap.parse_args(argv)
    n = args.n or (20_000 if args.quick else 200_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = _make_entry(Path(tmp), n, args.dim)
        time.sleep(2.1)  # files younger than RACY_SECONDS are always hashed; let them age
        mb = sum(f.stat().st_size for f in path.iterdir()) / 2**20
        payload: dict = {"config": {"n_rows": n, "dim": args.dim, "entry_mb": mb}}
        for label, verify in (("size", "size"), ("sha256_every_open", True),
                              ("auto_first_open", "auto"), ("auto_later_open", "auto")):
            payload[label] = run_isolated(OPEN.format(path=str(path), verify=verify))
            print(f"{label:18s} {payload[label]['seconds'] * 1000:8.1f} ms  ({mb:.0f} MB entry)")
    write_result("cache_verify", payload, quick=args.quick)
    return payload


if __name__ == "__main__":
    main()
