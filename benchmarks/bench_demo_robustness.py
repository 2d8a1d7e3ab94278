"""Does the demo's repair generalise? (issue 11) The demo pipeline on confounder configurations
other than the default: other confounded classes, tag sizes and corners, training-site and
shifted-site rates, seeds.

Each configuration runs :func:`cbm.demo.pipeline.run_demo` (a fresh KnoBo with balanced
grounding, the repair chosen on the training site's validation split only, the baselines) and
records the headline numbers of :meth:`DemoResult.summary`. The configurations below were fixed
before any result was seen; they are not tuned. The JSON is rewritten after every configuration,
and a rerun skips configurations already recorded (resumable). ``--quick`` runs two small ones
into ``demo_robustness_quick.json``.

Sizes: the full run uses 1,000 train + 300 val images, 300 in-domain and 600 shifted test images
at 64 px per configuration (smaller than ``cbm demo``'s default, because this machine's CPU is
shared); the default demo configuration is reported by ``bench_demo.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS_DIR, is_recorded, record_config, recorded_configs, write_result  # noqa: E402

SIZES = {"n_train": 1000, "n_val": 300, "n_test": 300, "n_shifted": 600, "image_size": 64}
QUICK_SIZES = {"n_train": 400, "n_val": 100, "n_test": 100, "n_shifted": 200, "image_size": 64}
DEFAULT_SIZES = {"n_train": 4000, "n_val": 1000, "n_test": 1000, "n_shifted": 2000, "image_size": 96}  # DemoConfig()

# (confounded class, tag size, corner, P(tag | k) train, P(tag | others) train,
#  P(tag | others) shifted, seed); P(tag | k) on the shifted site is 0 throughout.
CONFIGS = [
    ("Shirt", 6, "top-left", 0.95, 0.05, 0.8, 0),
    ("Coat", 6, "top-left", 0.9, 0.05, 0.7, 1),
    ("Pullover", 4, "bottom-right", 0.85, 0.05, 0.6, 2),
    ("T-shirt/top", 8, "top-right", 0.8, 0.05, 0.5, 0),
    ("Dress", 4, "bottom-left", 0.95, 0.05, 0.8, 1),
    ("Shirt", 4, "bottom-right", 0.7, 0.05, 0.5, 2),
    ("Coat", 8, "bottom-left", 0.95, 0.1, 0.8, 0),
    ("Pullover", 6, "top-right", 0.75, 0.05, 0.7, 1),
    ("Sneaker", 6, "top-left", 0.9, 0.05, 0.6, 2),
    ("Shirt", 8, "top-right", 0.9, 0.05, 0.7, 1),
    ("Bag", 4, "top-left", 0.85, 0.05, 0.8, 0),
    ("T-shirt/top", 6, "bottom-right", 0.95, 0.05, 0.6, 2),
]
QUICK_CONFIGS = CONFIGS[:2]

GOALS = {"gain_points": 5.0, "gain_share": 0.8, "beats_baselines_share": 0.8, "in_domain_cost_points": 3.0,
         "cbm_vs_black_box_in_domain_points": 2.0}
# The line printed as each configuration finishes (fields of its result).
PROGRESS = ("{edit}; shifted {shifted_gain_points:+.1f} points ({shifted_after:.3f} vs black box {black_box_shifted:.3f}, "
            "never-k {never_predict_k_shifted:.3f}); in-domain cost {in_domain_cost_points:+.1f}; {wall_s:.0f} s")


def demo_config(row: tuple, sizes: dict, root: Path):
    from cbm.demo.confound import ConfoundConfig
    from cbm.demo.pipeline import DemoConfig

    k, size, corner, r_k, r_o, r_shift, seed = row
    confound = ConfoundConfig(confounded_class=k, tag_size=size, corner=corner, rate_class_train=r_k,
                              rate_other_train=r_o, rate_class_shift=0.0, rate_other_shift=r_shift)
    tag = f"{k.replace('/', '-')}-{size}-{corner}-{r_k}-{r_o}-{r_shift}-{seed}"
    return DemoConfig(**sizes, seed=seed, confound=confound, out_dir=root / tag, cache_dir=root / "cache")


def config_dict(cfg) -> dict:
    from dataclasses import asdict

    return {**{k: v for k, v in asdict(cfg).items() if k.startswith("n_") or k in ("seed", "image_size")},
            **asdict(cfg.confound)}


def run_config(row: tuple, sizes: dict, root: Path) -> dict:
    from cbm.demo.pipeline import run_demo

    cfg = demo_config(row, sizes, root)
    t = time.perf_counter()
    r = run_demo(cfg, progress=False, log=lambda *a: None, pcbm=False)
    out = {"config": config_dict(cfg)}
    out.update(r.summary())
    out["wall_s"] = time.perf_counter() - t
    return out


def goals(configs: list[dict]) -> dict:
    n = len(configs)
    gain = [c["shifted_gain_points"] >= GOALS["gain_points"] for c in configs]
    beats = [c["shifted_after"] > c["black_box_shifted"] and c["shifted_after"] > c["never_predict_k_shifted"]
             for c in configs]
    k_ok = [c["edit"] == "none" or c["k_recall_shifted_after"] >= c["k_recall_shifted_before"]
            for c in configs]  # no edit chosen: the recall is unchanged
    cost = [c["in_domain_cost_points"] <= GOALS["in_domain_cost_points"] for c in configs]
    # the reference: KnoBo trained on the same images before the tag was stamped, the most that undoing
    # the confounder can give back (configurations recorded before it existed have none)
    ref = [c for c in configs if np.isfinite(c.get("headroom_points", np.nan))]
    room = [c["headroom_points"] >= GOALS["gain_points"] for c in ref]
    return {"n": n, "gain_ge_5_points": sum(gain), "beats_black_box_and_never_predict_k": sum(beats),
            "k_recall_shifted_not_lower": sum(k_ok), "in_domain_cost_le_3_points": sum(cost),
            "with_reference": len(ref), "headroom_ge_5_points": sum(room),
            "gain_ge_5_where_headroom_ge_5": sum(r and c["shifted_gain_points"] >= GOALS["gain_points"]
                                                 for r, c in zip(room, ref, strict=True)),
            "gain_within_1_point_of_headroom": sum(c["shifted_gain_points"] >= c["headroom_points"] - 1 for c in ref),
            "reference_beats_black_box_and_never_predict_k": sum(
                c["tag_free_cbm_shifted"] > c["black_box_shifted"]
                and c["tag_free_cbm_shifted"] > c.get("never_predict_k_shifted", np.nan) for c in ref),
            "median_gain_points": float(np.median([c["shifted_gain_points"] for c in configs])) if n else None,
            "median_headroom_points": float(np.median([c["headroom_points"] for c in ref])) if ref else None,
            "met": {"gain": n > 0 and sum(gain) >= GOALS["gain_share"] * n,
                    "beats_baselines": n > 0 and sum(beats) >= GOALS["beats_baselines_share"] * n,
                    "k_recall": n > 0 and all(k_ok), "in_domain_cost": n > 0 and all(cost)}}


def markdown(configs: list[dict]) -> str:
    """The README table: one row per configuration."""
    head = ("| # | class | tag | train k/others | shifted others | seed | chosen edit | shifted before -> after "
            "(gain) | trained without the tag (headroom) | black box | black box + same fix | never k | k recall shifted | "
            "in-domain CBM / black box (cost) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for c in configs:
        f = c["config"]
        on = [k.replace("_", "-") for k in re.findall(r"(\w+)=True", c["edit"])]  # as Edit.short_label
        edit = c["edit"].split("(")[0] + (f" ({', '.join(on)})" if on else "")
        rows.append(
            f"| {c.get('index', '')} | {f['confounded_class']} | {f['tag_size']} px {f['corner']} | "
            f"{f['rate_class_train']:.0%}/{f['rate_other_train']:.0%} | {f['rate_other_shift']:.0%} | {f['seed']} | "
            f"{edit} | {c['cbm_shifted']:.3f} -> {c['shifted_after']:.3f} ({c['shifted_gain_points']:+.1f}) | "
            f"{c.get('tag_free_cbm_shifted', np.nan):.3f} ({c.get('headroom_points', np.nan):+.1f}) | "
            f"{c['black_box_shifted']:.3f} | {c['black_box_same_fix_shifted']:.3f} | {c['never_predict_k_shifted']:.3f} | "
            f"{c['k_recall_shifted_before']:.2f} -> {c['k_recall_shifted_after']:.2f} | "
            f"{c['cbm_in_domain']:.3f} / {c['black_box_in_domain']:.3f} ({c['in_domain_cost_points']:+.1f}) |")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small configurations")
    ap.add_argument("--default-sizes", action="store_true",
                    help="the same configurations at cbm demo's default sizes (4,000 + 1,000 images at 96 px) "
                         "into demo_robustness_default.json")
    ap.add_argument("--root", type=Path, default=None, help="work folder (embedding cache, model dirs)")
    ap.add_argument("--only", type=int, nargs="*", default=None,
                    help="run only these configuration indices, in this order (parallel workers)")
    ap.add_argument("--table", action="store_true", help="print the recorded results as a markdown table")
    args = ap.parse_args(argv)
    name = "demo_robustness_quick" if args.quick else "demo_robustness"
    rows, sizes = (QUICK_CONFIGS, QUICK_SIZES) if args.quick else (CONFIGS, SIZES)
    if args.default_sizes:
        name, sizes = "demo_robustness_default", DEFAULT_SIZES
    root = args.root or Path(__file__).resolve().parent / ".demo_robustness"
    path = RESULTS_DIR / f"{name}.json"
    if args.table:
        print(markdown(recorded_configs(path)))
        print(json.dumps(goals(recorded_configs(path)), indent=1))
        return 0

    def write(done: list[dict]) -> None:
        write_result(name, {"sizes": sizes, "goals": GOALS, "summary": goals(done), "configs": done},
                     quick=args.quick)

    order = range(len(rows)) if args.only is None else args.only
    for i in order:
        row = rows[i]
        if is_recorded(path, config_dict(demo_config(row, sizes, root))):
            continue  # recorded by an earlier run or another worker
        result = run_config(row, sizes, root)
        record_config(path, i, result, write)
        print(f"[{i}] {row}: " + PROGRESS.format(**result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
