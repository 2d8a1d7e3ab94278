"""`cbm run EXPERIMENT.toml`: run an experiment file (data, encoder, concepts, method, splits, seeds, grid).

    cbm run examples/experiments/quick_synthetic.toml
    cbm run examples/experiments/lf_cbm_cub.toml --dry-run      # the whole path on a tiny stand-in
    cbm run my.toml --out runs/today --check                    # only check files and settings

Writes a results folder: resolved config, environment and package versions, metrics JSON per
seed, mean ± std per grid point (summary.json, summary.md), charts, and TensorBoard event files
when `tensorboard` is installed. See cbm.research.experiment for the file format.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a reproducible experiment from a TOML file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", metavar="EXPERIMENT.toml")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="results folder (default: the file's `output`, else runs/experiments/<name>)")
    p.add_argument("--dry-run", action="store_true",
                   help="replace the data by a tiny synthetic stand-in, one seed: checks the whole path fast")
    p.add_argument("--check", action="store_true",
                   help="only check the file and that its dataset, weights and concept files exist")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    from cbm.research.experiment import check_paths, expand, load_config, run_experiment

    if args.check:
        cfg = load_config(args.experiment)
        base = Path(cfg["_path"]).parent
        problems = list(dict.fromkeys(p for _, point in expand(cfg) for p in check_paths(point, base)))
        points = expand(cfg)
        print(f"{cfg.get('name', args.experiment)}: {len(points)} grid point(s) x {len(cfg.get('seeds', [0]))} "
              f"seed(s), method {cfg['method']['name']}")
        for msg in problems:
            print(f"  missing: {msg}")
        print("ready to run" if not problems else "not ready: see the missing files above")
        return 0 if not problems else 1
    result = run_experiment(args.experiment, args.out, dry_run=args.dry_run)
    print()
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"results written to {result.folder}")
    return 0
