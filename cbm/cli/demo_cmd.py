"""`cbm demo`: the confounded Fashion-MNIST demo, end to end (see cbm.demo.pipeline).

Each stage is printed to stdout as it starts, with the seconds since the start; the report follows.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the offline end-to-end demo (Fashion-MNIST with a planted confounder)",
        description="Train a knowledge-prior CBM, a PCBM and a black box on Fashion-MNIST images with a "
                    "planted tag, show that the CBM leans on the tag, and measure what pruning it does on a "
                    "shifted site. Writes a model directory that `cbm app` opens. On 2 CPU cores it takes about "
                    "130 s the first time (embedding the images) and 60 s after that "
                    "(benchmarks/results/demo.json); it prints each stage as it starts.",
    )
    p.add_argument("--out", help="output folder (default: $CBM_HOME/demo, i.e. ~/.cache/cbmkit/demo)")
    p.add_argument("--quick", action="store_true",
                   help="a small configuration for a first look: 1,600 images at 64 px instead of 8,000 at 96 px")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-shifted", type=int)
    p.add_argument("--image-size", type=int, help="backbone input resolution in pixels (default 96)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confounded-class", help="class that carries the tag in the training site (default Shirt)")
    p.add_argument("--llm", metavar="MODEL", help="regenerate the concept bank with this LLM (OpenAI-compatible)")
    p.add_argument("--llm-base-url", help="endpoint for --llm (default: OpenAI; or a local vLLM/Ollama URL)")
    p.add_argument("--app", action="store_true", help="open the app on the demo model when done")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--cct", action="store_true",
                   help="also train the Concept-Centric Transformer on 224 px patch tokens (a second, slower "
                        "embedding: minutes, see README) and write the tag concept's maps as HTML reports")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cbm.demo import ConfoundConfig
    from cbm.demo.pipeline import DemoConfig, quick_config, run_demo

    cfg = quick_config() if args.quick else DemoConfig()
    changes = {k: v for k, v in {
        "n_train": args.n_train, "n_shifted": args.n_shifted, "image_size": args.image_size,
        "seed": args.seed, "out_dir": args.out, "llm_model": args.llm, "llm_base_url": args.llm_base_url,
    }.items() if v is not None}
    if args.confounded_class:
        changes["confound"] = ConfoundConfig(**{**cfg.confound.__dict__, "confounded_class": args.confounded_class})
    cfg = replace(cfg, **changes)
    result = run_demo(cfg, progress=not args.no_progress, log=say)
    print(result.report())
    if getattr(args, "cct", False):
        from cbm.demo.cct_tag import run_demo_cct

        run_demo_cct(cfg, progress=not args.no_progress, log=say)
    if args.app:
        from cbm.cli import main

        return main(["app", str(result.model_dir)])
    return 0


def say(line: str) -> None:
    """Print one progress line now, even when stdout is a pipe or a file (no block buffering)."""
    print(line, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_run(argparse.Namespace()))
