"""`cbm eval MODEL_DIR --data PATH`: evaluate a saved model on every split of a dataset.

    cbm eval runs/labo --data splits.npz
    cbm eval runs/labo --data splits.npz --version 2 --json metrics.json
"""

from __future__ import annotations

from cbm._io import atomic_write_json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a saved model directory on a dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--data", required=True, metavar="PATH", help="splits .npz, EmbeddingStore folder or 'synthetic'")
    p.add_argument("--version", type=int, default=None, help="model version (default: current)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (with --data synthetic)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    from cbm.cli import _concept_eval

    _concept_eval.add_arguments(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from cbm.data import load_training_data
    from cbm.io import load_model
    from cbm.metrics import format_report, report

    model = load_model(args.model_dir, args.version)
    splits, _ = load_training_data(args.data, args.seed)
    metrics = report(model, splits)
    print(format_report(metrics))
    from cbm.cli import _concept_eval

    if _concept_eval.wanted(args):
        metrics["concepts"], text = _concept_eval.run(model, splits, args)
        print("\n" + text)
    if args.json:
        atomic_write_json(args.json, metrics)
    return 0
