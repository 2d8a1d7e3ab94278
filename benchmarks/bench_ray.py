"""Embedding and search on Ray vs one process: throughput, Ray's own overhead, the break-even size.

Embeds scikit-learn's digits with the offline MobileNetV2 (96 px) into an EmbeddingStore four
ways: one process with 1 and with 2 torch threads (no Ray), Ray with 1 and with 2 local workers
(1 CPU each), checking that the Ray store equals the 1-thread local store bit for bit. Measures
Ray's start-up, actor start (process + encoder), per-task overhead, where the cost of one image
goes (preprocessing, the network, writing and hashing the shard), and concept search over a
synthetic store locally and on Ray. Writes ``benchmarks/results/ray.json``.

    python benchmarks/bench_ray.py --quick        # 128 images, about a minute
    python benchmarks/bench_ray.py                # 512 images
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import write_result  # noqa: E402


class RandomRows:
    """A stand-in encoder for the search store: row i is a fixed random vector (no network)."""

    name, dim, supports_images = "random", 1280, False

    @property
    def fingerprint(self) -> str:
        return f"random|d={self.dim}"

    def encode_images(self, items, batch_size=64):
        return np.stack([np.random.default_rng(int(i)).standard_normal(self.dim, np.float32)
                         for i in items])


class Indices:
    """Dataset whose item i is i (for RandomRows)."""

    def __init__(self, n: int) -> None:
        self.n, self.fingerprint, self.name = n, f"indices|{n}", "indices"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _shards_equal(a: Path, b: Path) -> bool:
    files = sorted(f.name for f in a.glob("shard-*.npy"))
    return files == sorted(f.name for f in b.glob("shard-*.npy")) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files)


def _overheads(ray, n_tasks: int) -> dict:
    @ray.remote(num_cpus=1)
    def noop(x):
        return x

    ray.get([noop.remote(i) for i in range(4)])  # workers warm
    t0 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(n_tasks)])
    batched = (time.perf_counter() - t0) / n_tasks
    t0 = time.perf_counter()
    for i in range(50):
        ray.get(noop.remote(i))
    return {"per_task_s_pipelined": batched, "per_task_s_round_trip": (time.perf_counter() - t0) / 50}


def _cost_split(enc, ds, batch_size: int, shard_rows: int) -> dict:
    """Seconds per image: preprocessing (decode, resize), the network, shard write + sha256."""
    import torch

    from cbm._images import to_rgb

    items = [ds[i][0] if isinstance(ds[i], tuple) else ds[i] for i in range(len(ds))]
    t0 = time.perf_counter()
    x = torch.stack([enc.preprocess(to_rgb(im)) for im in items])
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = enc.encode_images(x, batch_size=batch_size)
    t_net = time.perf_counter() - t0
    arr = np.resize(feats.astype(np.float16), (shard_rows, enc.dim))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with open(Path(tmp) / "s.npy", "wb") as fh:
            np.save(fh, arr)
            fh.flush()
            os.fsync(fh.fileno())
        hashlib.sha256((Path(tmp) / "s.npy").read_bytes()).hexdigest()
        t_io = time.perf_counter() - t0
    n = len(items)
    per = {"preprocess_s": t_pre / n, "network_s": t_net / n, "write_and_hash_s": t_io / shard_rows}
    total = sum(per.values())
    return {**per, "io_share": per["write_and_hash_s"] / total}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (128 images)")
    ap.add_argument("--n", type=int, default=None, help="number of images (default 512)")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--search-rows", type=int, default=None, help="rows of the search store")
    args = ap.parse_args(argv)
    n = args.n or (128 if args.quick else 512)
    shard = max(16, n // 8)  # 8 shards: enough to keep 2 workers busy
    search_rows = args.search_rows or (8192 if args.quick else 32768)

    import ray
    import torch

    from cbm.data import load_digits_images
    from cbm.encoders import create_encoder
    from cbm.kernels import concept_search
    from cbm.store import EmbeddingStore

    ds = load_digits_images(n)
    enc = create_encoder("mobilenet_v2", image_size=args.image_size, device="cpu")
    enc.encode_images([ds[0]])  # warm-up
    res: dict = {"config": {"n_images": n, "dataset": ds.name, "encoder": enc.fingerprint,
                            "shard_size": shard, "batch_size": args.batch_size, "dim": enc.dim,
                            "ray": ray.__version__, "load_average_1m_start": os.getloadavg()[0]}}
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {}
        for label, t in (("local_1_thread", 1), ("local_2_threads", 2)):
            torch.set_num_threads(t)
            c = EmbeddingStore(tmp / label, shard_size=shard).get_or_compute(
                enc, ds, batch_size=args.batch_size, progress=False)
            runs[label] = {"seconds": c.stats.seconds, "images_per_s": n / c.stats.seconds}
        torch.set_num_threads(1)
        res["cost_per_image_1_thread"] = _cost_split(enc, ds, args.batch_size, shard)
        torch.set_num_threads(threads)

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        t_init = time.perf_counter() - t0
        try:
            overhead = {"ray_init_s": t_init, **_overheads(ray, 200)}
            from cbm.distributed import ShardWriter

            plan = EmbeddingStore(tmp / "probe", shard_size=shard).plan(enc, ds)
            actor_cls = ray.remote(num_cpus=1)(ShardWriter)
            t0 = time.perf_counter()
            actors = [actor_cls.remote(plan, ds, args.batch_size) for _ in range(2)]
            ray.get([a.pid.remote() for a in actors])
            overhead["actor_start_s"] = time.perf_counter() - t0  # 2 in parallel: process + encoder
            t0 = time.perf_counter()  # the started actors' steady state: shards only
            ray.get([actors[s % 2].write.remote(s) for s in range(plan.n_shards)])
            runs["ray_2_workers_steady"] = {"images": n, "seconds": time.perf_counter() - t0}
            runs["ray_2_workers_steady"]["images_per_s"] = n / runs["ray_2_workers_steady"]["seconds"]
            for a in actors:
                ray.kill(a)
            for w, data in ((1, ds), (2, ds)):
                label = f"ray_{w}_worker" + ("s" if w > 1 else "")
                c = EmbeddingStore(tmp / label, shard_size=shard).get_or_compute(
                    enc, data, batch_size=args.batch_size, progress=False, engine="ray", workers=w)
                runs[label] = {"images": len(data), "seconds": c.stats.seconds,
                               "images_per_s": len(data) / c.stats.seconds}
                if data is ds:
                    runs[label]["same_bytes_as_local_1_thread"] = _shards_equal(
                        c.path, next((tmp / "local_1_thread").glob("embeddings/*")))

            store = EmbeddingStore(tmp / "search", shard_size=4096).get_or_compute(
                RandomRows(), Indices(search_rows), batch_size=1024, progress=False)
            query = torch.randn(2, RandomRows.dim)
            t0 = time.perf_counter()
            ref = concept_search(store, query, [1.0, -1.0], 10)
            t_local = time.perf_counter() - t0
            t0 = time.perf_counter()
            first = store.search(query, [1.0, -1.0], 10, engine="ray", workers=2)
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = store.search(query, [1.0, -1.0], 10, engine="ray", workers=2)
            t_warm = time.perf_counter() - t0
            search = {"rows": search_rows, "dim": RandomRows.dim, "shards": len(store.shards),
                      "local_s": t_local, "ray_2_workers_first_s": t_first,
                      "ray_2_workers_warm_s": t_warm,
                      "identical": bool(torch.equal(first[1], ref[1]) and torch.equal(again[0], ref[0]))}
        finally:
            t0 = time.perf_counter()
            ray.shutdown()
            overhead["ray_shutdown_s"] = time.perf_counter() - t0

    res["runs"] = runs
    res["ray_overhead"] = overhead
    res["search"] = search
    # `--engine ray` costs fixed (start the cluster and the actors, stop it) + b per image (the
    # actors' steady state); it beats the best local run (c per image) above n* = fixed / (c - b).
    b = runs["ray_2_workers_steady"]["seconds"] / n
    fixed = overhead["ray_init_s"] + overhead["actor_start_s"] + overhead["ray_shutdown_s"]
    best_local = min(runs["local_1_thread"]["seconds"], runs["local_2_threads"]["seconds"]) / n
    res["break_even"] = {
        "fixed_overhead_s": fixed, "best_local_s_per_image": best_local,
        "ray_2_workers_steady_s_per_image": b,
        "images": (fixed / (best_local - b)) if best_local > b else None,
        "note": "images below which --engine ray (incl. starting and stopping a local cluster) is "
                "slower than the best one-process run on this machine; None: never faster here"}
    res["config"]["load_average_1m_end"] = os.getloadavg()[0]  # the CPU is shared
    path = write_result("ray", res, quick=args.quick)
    print(f"{n} images: " + ", ".join(f"{k} {v['images_per_s']:.1f} img/s" for k, v in runs.items())
          + f"; ray init {overhead['ray_init_s']:.1f} s, actors {overhead['actor_start_s']:.1f} s, "
          f"task {overhead['per_task_s_pipelined'] * 1e3:.1f} ms; break-even "
          f"{res['break_even']['images']} images -> {path}")
    return res


if __name__ == "__main__":
    main()
