"""`cbm predict` over cached embeddings: explained predictions for 10,000 rows into a CSV.

Target (issue 20): 10,000 cached embeddings predicted with explanations (top concepts for and
against) in under 10 s on 2 cores. A PCBM with 50 concepts and 10 classes is trained on a synthetic
concept world (dim 512), saved as a model directory, and the embeddings are written by the
EmbeddingStore (float16 shards, as `cbm embed` writes them). The model directory holds its
evaluation data.npz (as `cbm train` writes it), so the out-of-distribution columns are computed.
Timed: a fresh run of :func:`cbm.predict.predict_to_csv` end to end (model load, cache
verification, out-of-distribution calibration and scores, explanations, CSV with fsync per batch)
and a resumed run that finds every id already written.

Writes ``benchmarks/results/predict.json`` (``--quick``: 2,000 rows, ``predict_quick.json``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _harness import write_result  # noqa: E402
from findings_world import LookupEncoder, Rows  # noqa: E402 - a cache of given embeddings, as the tests make it

from cbm.data.evalfile import save_eval_data  # noqa: E402
from cbm.data.synthetic import make_concept_world  # noqa: E402
from cbm.io import save_model  # noqa: E402
from cbm.models import create_model  # noqa: E402
from cbm.predict import predict_to_csv  # noqa: E402
from cbm.store import EmbeddingStore  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 rows instead of 10,000")
    args = ap.parse_args(argv)
    n = 2000 if args.quick else 10000
    world = make_concept_world(n_classes=10, n_concepts=50, n_samples=1000, dim=512, random_state=0)
    train = world["train"]
    model = create_model("pcbm", concepts=world.bank).fit(train.X, train.y)
    rng = np.random.default_rng(0)
    X = train.X[rng.integers(0, len(train.X), n)] + 0.05 * rng.standard_normal((n, 512)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_model(model, tmp / "model", fingerprints={"encoder": LookupEncoder.fingerprint})
        save_eval_data(tmp / "model" / "data.npz", {s: {"X": world[s].X, "y": world[s].y} for s in ("val", "test")})
        cache = EmbeddingStore(tmp / "cache").get_or_compute(LookupEncoder(X), Rows(n), progress=False)
        t0 = time.perf_counter()
        stats = predict_to_csv(tmp / "model", cache.path, tmp / "p.csv", progress=False)
        fresh = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = predict_to_csv(tmp / "model", cache.path, tmp / "p.csv", progress=False)
        resumed = time.perf_counter() - t0
        lines = (tmp / "p.csv").read_text().count("\n")
        assert stats.written == n and again.written == 0 and lines == n + 1, (stats, again, lines)
        assert stats.ood_threshold is not None  # the ood_score / ood_flag columns were written
        res = {
            "shape": {"rows": n, "concepts": len(world.bank), "classes": 10, "dim": 512, "top": 3,
                      "ood_columns": True},
            "seconds": {"predict_fresh": round(fresh, 3), "predict_resumed_all_done": round(resumed, 3)},
            "rows_per_s": round(n / fresh),
            "csv_bytes": (tmp / "p.csv").stat().st_size,
            "goal": {"rows": 10000, "seconds": 10.0, "met": (not args.quick) and fresh < 10.0},
        }
    path = write_result("predict_quick" if args.quick else "predict", res)
    print(f"{n} rows: fresh {fresh:.2f} s ({n / fresh:,.0f} rows/s), resumed {resumed:.2f} s -> {path}")
    return res


if __name__ == "__main__":
    main()
