"""Concept-Centric Transformer on the confounded Fashion-MNIST demo (issue 15): accuracy beside a
linear probe on the same backbone, and where the "tag in the corner" concept attends.

MobileNetV2 (ImageNet) patch tokens at 224 px (7 x 7 x 1280, cached by the EmbeddingStore with
``kind="tokens"``). Concept supervision is image-level only (garment class concepts and the tag
flag); no spatial target. Measured per model variant (see :mod:`cbm.demo.cct_tag`): in-domain and
shifted accuracy, fit time per epoch on this machine, and on stamped images the pointing game
(share whose most attended patch holds the tag), the attention mass on the tag's patches (uniform
4/49 = 0.082), the same for a corner never seen in training, and the spread on untagged images.
Writes ``benchmarks/results/cct.json`` (``--quick``: the demo's small split sizes, ``cct_quick.json``).

    python benchmarks/bench_cct.py [--quick] [--threads 1] [--device cpu] [--out runs/cct-demo]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import peak_rss_mb, write_result  # noqa: E402

#: the issue's goals, checked on the "cct" model
GOALS = {
    "in_domain_vs_probe": "in-domain accuracy within 1 point of the linear probe on the same backbone's "
                          "pooled features, or better",
    "pointing_game": "trained with image-level concept labels only, the tag concept's attention peaks on a "
                     "patch that holds the tag in >= 90% of stamped images",
    "pointing_game_unseen_corner": "the same (>= 90%) with the tag in a corner never seen in training",
    "spread_untagged": "on untagged images the tag concept's attention is spread: its maps' normalised entropy "
                       "is higher than on stamped images",
}


def goals(models: dict, reasons: dict[str, str] | None = None) -> dict:
    """Each goal with its measured value, whether it holds, and (when it does not) why."""
    m, probe = models["cct"], models.get("linear-probe (pooled tokens)")
    tag = m["tag"]
    checks = {
        "in_domain_vs_probe": (None if probe is None else round(m["accuracy_test"] - probe["accuracy_test"], 4),
                               None if probe is None else m["accuracy_test"] >= probe["accuracy_test"] - 0.01),
        "pointing_game": (tag["pointing_game"], tag["pointing_game"] >= 0.9),
        "pointing_game_unseen_corner": (tag["unseen_corner"]["pointing_game"],
                                        tag["unseen_corner"]["pointing_game"] >= 0.9),
        "spread_untagged": ({"untagged": tag["spread_untagged"], "stamped": tag["spread_stamped"]},
                            tag["spread_untagged"] > tag["spread_stamped"]),
    }
    out = {}
    for key, (value, met) in checks.items():
        out[key] = {"goal": GOALS[key], "value": value, "met": met}
        if met is False:
            out[key]["shortfall"] = (reasons or SHORTFALL).get(
                key, "not analysed yet: inspect the maps (cbm.demo.cct_tag.tag_attention) and record why here")
    out["s_per_epoch_cpu"] = {"goal": "training time per epoch on the demo data, reported on CPU",
                              "value": m["s_per_epoch"], "met": None}
    return out


#: why a goal falls short, from the analysis of the runs recorded in results/cct.json
SHORTFALL: dict[str, str] = {}

#: what the variants show (analysis of the maps, recorded with the numbers)
NOTE = ("'cct (released mean cost)' trains the tag's map from the image-level flag through the mean "
        "attention over all 49 patches, so a tagged image asks every patch to attend to the tag: the map "
        "saturates near 1 on the ~3 x 3 patches whose receptive field sees the tag, its argmax among "
        "near-ties lands beside the 2 x 2 tag patches at the unseen corner (the 100% at the trained corner "
        "owes to ties resolving to patch 0, the corner itself). 'cct' (spatial_pooling='max', the default) "
        "compares the tag's peak patch attention with the flag (multiple-instance learning), so only the "
        "patches that hold the tag need attend and the peak lands on them at either corner.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the demo's small split sizes (1,600 images)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--cache-dir", default=None, help="embedding cache (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="also save the CCT model directory here (for cbm app)")
    args = ap.parse_args(argv)
    import torch

    from cbm.demo.cct_tag import CCT_SIZES, run
    from cbm.demo.pipeline import DemoConfig, quick_config

    torch.set_num_threads(args.threads)
    sizes = {} if args.quick else CCT_SIZES  # 2,000 train, 500 val, 500 test, 1,000 shifted (cbm demo --cct)
    cfg = quick_config(image_size=224, **sizes) if args.quick else DemoConfig(image_size=224, **sizes)
    with tempfile.TemporaryDirectory(prefix="cbm-bench-cct-") as tmp:
        res = run(cfg, image_size=224, cache_dir=args.cache_dir or tmp, model_params={"device": args.device},
                  out_dir=args.out)
    res["goals"] = goals(res["models"])
    res["note"] = NOTE
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    res["threads"] = args.threads
    path = write_result("cct", res, quick=args.quick)
    for name, m in res["models"].items():
        tag = m.get("tag", {})
        print(f"{name:34s} test {m['accuracy_test']:.3f} shifted {m['accuracy_shifted']:.3f}"
              + (f"  pointing {tag['pointing_game']:.3f} mass {tag['mass_on_tag']:.3f} unseen corner "
                 f"{tag['unseen_corner']['pointing_game']:.3f}" if tag else ""))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
