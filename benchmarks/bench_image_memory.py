"""Peak memory of embedding large images: reduced one at a time (the store) vs a decoded batch.

A folder holds K large grayscale PNGs (W x W, under the pixel cap) and one 20000 x 20000 PNG bomb.
Each provider runs in a fresh interpreter and reports its peak RSS above the RSS after imports:

* ``store``: ``EmbeddingStore.get_or_compute`` as shipped (each image decoded, reduced to model
  size and dropped before the next is read; the bomb skipped unread);
* ``decoded_batch``: the earlier behaviour, every image of a batch decoded to full-resolution RGB
  before any is reduced (the bomb left out, since it aborted that code).

Writes ``benchmarks/results/image_memory.json``.

    python benchmarks/bench_image_memory.py --quick     # 4 x 6000^2, about half a minute
    python benchmarks/bench_image_memory.py             # 6 x 9000^2
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run_isolated, write_result  # noqa: E402

ENCODER = """
import numpy as np, torch
from cbm.encoders import Encoder

class Tiny(Encoder):
    name, dim, fingerprint = "tiny", 4, "tiny|v1"
    def __init__(self):
        self.device = torch.device("cpu")
    def preprocess(self, image):
        return torch.from_numpy(np.asarray(image.resize((32, 32)), np.float32) / 255).permute(2, 0, 1)
    def _encode_batch(self, x):
        return x.mean(dim=(2, 3)).repeat(1, 2)[:, :4]
"""

STORE = ENCODER + """
import json, warnings
from _harness import peak_rss_mb
from cbm.data import image_folder
from cbm.store import EmbeddingStore
base = peak_rss_mb()
ds = image_folder({folder!r})
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    cache = EmbeddingStore({cache!r}).get_or_compute(Tiny(), ds, batch_size={batch}, progress=False)
print(json.dumps({{"seconds": time.perf_counter() - t0, "embedded": len(cache),
                   "skipped": cache.stats.n_skipped, "peak_rss_mb": peak_rss_mb() - base}}))
"""

DECODED_BATCH = ENCODER + """
import json
from _harness import peak_rss_mb
from cbm.data.images import read_image
base = peak_rss_mb()
paths = sorted(p for p in __import__("pathlib").Path({folder!r}).rglob("*.png") if p.name != "bomb.png")
t0 = time.perf_counter()
enc, out = Tiny(), []
for b in range(0, len(paths), {batch}):
    images = [read_image(p) for p in paths[b:b + {batch}]]   # a whole batch decoded first
    out.append(enc.encode_images(images))
    del images
print(json.dumps({{"seconds": time.perf_counter() - t0, "embedded": sum(len(o) for o in out),
                   "skipped": 0, "peak_rss_mb": peak_rss_mb() - base}}))
"""


def write_png(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG of zeros, compressed row block by row block (never decoded here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(6)
    block = 250
    rows = b"\0" * (width + 1) * block
    body = b"".join(z.compress(rows) for _ in range(height // block)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 images of 6000 x 6000")
    ap.add_argument("--n", type=int, default=None, help="number of large images")
    ap.add_argument("--side", type=int, default=None, help="width = height of each image, pixels")
    args = ap.parse_args(argv)
    n, side = args.n or (4 if args.quick else 6), args.side or (6000 if args.quick else 9000)

    payload: dict = {"config": {"n_images": n, "side": side, "megapixels_each": side * side / 1e6,
                                "batch_size": n, "bomb": "20000 x 20000 PNG"}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs" / "big"
        folder.mkdir(parents=True)
        for i in range(n):
            write_png(folder / f"{i}.png", side, side)
        write_png(folder / "bomb.png", 20000, 20000)
        payload["config"]["bytes_on_disk"] = sum(p.stat().st_size for p in folder.iterdir())
        fmt = {"folder": str(folder.parent), "cache": str(Path(tmp) / "cache"), "batch": n}
        for name, code in (("store", STORE), ("decoded_batch", DECODED_BATCH)):
            payload[name] = run_isolated("import time\n" + code.format(**fmt))
            print(f"{name:14s} peak +{payload[name]['peak_rss_mb']:.0f} MiB, "
                  f"{payload[name]['embedded']} embedded, {payload[name]['skipped']} skipped, "
                  f"{payload[name]['seconds']:.1f} s")
    payload["peak_ratio"] = payload["decoded_batch"]["peak_rss_mb"] / max(1.0, payload["store"]["peak_rss_mb"])
    write_result("image_memory", payload, quick=args.quick)
    return payload


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
