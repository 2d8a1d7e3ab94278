"""The demo's budget (issue 8): cold run (nothing cached) under 10 minutes, warm run (embeddings
cached) under 1 minute, peak memory under 4 GB, on this machine's CPU cores.

Runs ``run_demo`` twice in fresh interpreters over the same empty cache folder: the first is cold,
the second warm. Records wall time per stage, peak RSS and the headline numbers (accuracy in-domain
and shifted, the edit's effect). Writes ``benchmarks/results/demo.json``; ``--quick`` uses the
small configuration (tests use it too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import run_isolated, write_result  # noqa: E402

RUN = """
import json, time
from pathlib import Path
from _harness import peak_rss_mb
from cbm.demo.pipeline import DemoConfig, quick_config, run_demo
t = time.perf_counter()
cfg = (quick_config if {quick} else DemoConfig)(out_dir=Path({root!r}) / "demo", cache_dir=Path({root!r}) / "cache")
r = run_demo(cfg, progress=False, log=lambda *a: None)
print(json.dumps({{"wall_s": time.perf_counter() - t, "stages_s": r.timings, "peak_rss_mb": peak_rss_mb(),
                  "rows": r.rows, "summary": r.summary(), "config": cfg.describe(),
                  "edit_shifted_delta": None if r.edit_effect is None else r.edit_effect.delta("shifted"),
                  "edit_test_delta": None if r.edit_effect is None else r.edit_effect.delta("test")}}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small configuration")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cbm-bench-demo-") as root:
        code = RUN.format(quick=args.quick, root=root)
        cold = run_isolated(code)
        warm = run_isolated(code)
    payload = {
        "cold": cold, "warm": warm,
        "goals": {"cold_s": 600, "warm_s": 60, "peak_rss_mb": 4096},
        "met": {"cold": cold["wall_s"] < 600, "warm": warm["wall_s"] < 60,
                "memory": max(cold["peak_rss_mb"], warm["peak_rss_mb"]) < 4096},
    }
    path = write_result("demo_quick" if args.quick else "demo", payload, quick=args.quick)
    print(f"cold {cold['wall_s']:.1f} s, warm {warm['wall_s']:.1f} s, peak {max(cold['peak_rss_mb'], warm['peak_rss_mb']):.0f} MiB; "
          f"shifted accuracy after the edit {100 * cold['edit_shifted_delta']:+.1f} points -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
