"""`cbm eval MODEL_DIR [--data PATH]`: evaluate a saved model on every split of a dataset.

    cbm eval runs/labo                              # the data.npz that `cbm train` wrote beside it
    cbm eval runs/labo --data splits.npz
    cbm eval runs/labo --data splits.npz --version 2 --json metrics.json

Prints, per split: accuracy, top-k and ANEC; then which split the model was trained on and its
site(s), and each split's accuracy and per-class recall, pooled and per site (``test@siteB``). The
in-domain / out-of-domain summary uses the training sites by name (never a guess), over the held-out
splits (all but train and val). ``--json`` holds the same (keys ``splits``, ``sites``, ``domains``).

The data's classes must be the model's, by name, and its embeddings must come from the model's
encoder when both are recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbm._io import atomic_write_json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a saved model directory on a dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--data", metavar="PATH",
                   help="splits .npz, EmbeddingStore folder or 'synthetic' (default: MODEL_DIR/data.npz)")
    p.add_argument("--version", type=int, default=None, help="model version (default: current)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (with --data synthetic)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    p.add_argument("--specificity", type=float, default=0.9,
                   help="multi-label models: report each finding's sensitivity at this specificity (default 0.9)")
    from cbm.cli import _concept_eval

    _concept_eval.add_arguments(p)
    p.set_defaults(func=_run)


def check_compatible(model, splits: dict, extras: dict, where: str) -> None:
    """Refuse data from another encoder or with classes the model does not know (by name)."""
    from cbm.encoders.record import EncoderRecord, model_encoder_record
    from cbm.exceptions import ClassMismatchError, EncoderMismatchError

    data_fp = extras.get("fingerprint")
    model_fp = (model_encoder_record(model) or EncoderRecord()).fingerprint
    if data_fp and model_fp and data_fp != model_fp:
        raise EncoderMismatchError(f"{where} was embedded by {data_fp!r}, but the model was trained on "
                                   f"{model_fp!r}; embed the images with the model's encoder.")
    model.concepts_.check_encoder(data_fp)
    if getattr(model, "multilabel_", False):
        findings = extras.get("findings")
        if findings is None or list(findings) != model.class_names_:
            raise ClassMismatchError(
                f"The model is multi-label with findings {model.class_names_[:20]}; {where} has "
                + ("single-label targets" if findings is None else f"findings {list(findings)[:20]}")
                + ". Evaluate on a 0/1 indicator matrix whose class_names are the model's findings, in order.")
        return
    known = set(model.class_names_)
    seen = sorted({str(c) for s in splits.values() for c in np.asarray(s["y"]).tolist()})
    unknown = [c for c in seen if c not in known]
    if unknown:
        raise ClassMismatchError(
            f"The classes of {where} do not match the model's by name: data classes ({len(seen)}): "
            f"{seen[:20]}; model classes ({len(known)}): {model.class_names_[:20]}; unknown to the model: "
            f"{unknown[:10]}. Evaluate on data with the model's class names.")


def site_summary(model, splits: dict, extras: dict, metrics: dict) -> str:
    """Add per-split, per-site accuracy and class recall to ``metrics`` (``sites``, and ``domains`` by the
    training sites, never guessed) and return its text."""
    from cbm.metrics import format_site_report, site_report

    recorded = (getattr(model, "fingerprints_", None) or {}).get("splits")
    sites = (recorded or {}).get("train_sites") if isinstance(recorded, dict) else None
    rep = site_report(model, splits, train_sites=sites or (extras.get("splits") or {}).get("train_sites"))
    metrics["sites"], metrics["domains"] = rep, rep["domains"]
    return format_site_report(rep)


def check_outputs(args) -> None:
    """Refuse ``--json`` a folder, and ``--json``/``--plots`` a file or under one, before any metric is computed."""
    for flag, value, folder in (("--json", args.json, False), ("--plots", getattr(args, "plots", None), True)):
        if not value:
            continue
        path = Path(value)
        if not folder and path.is_dir():
            raise ValueError(f"{flag} {value!r} is a folder; pass a file name such as {str(path / 'metrics.json')!r}.")
        for p in (path, *path.parents) if folder else path.parents:
            if p.exists() and not p.is_dir():
                where = "is a file" if p == path else f"lies under {str(p)!r}, which is a file"
                raise ValueError(f"{flag} {value!r} {where}; pass a new " + ("folder." if folder else "file name."))


def _run(args) -> int:
    import sys

    from cbm.data import load_training_data
    from cbm.data.training import split_note
    from cbm.io import load_model
    from cbm.metrics import format_report, report

    check_outputs(args)
    model = load_model(args.model_dir, args.version)
    data = args.data or str(Path(args.model_dir) / "data.npz")
    splits, extras = load_training_data(data, args.seed, require_train=False)
    check_compatible(model, splits, extras, f"--data {data!r}")
    note = split_note(data, extras)
    if note:
        print(note, file=sys.stderr)
    if getattr(model, "multilabel_", False):
        from cbm.models.multilabel import finding_metrics, format_finding_metrics

        metrics = finding_metrics(model, splits, args.specificity)
        print(format_finding_metrics(metrics))
    else:
        metrics = report(model, splits)
        metrics["domains"] = None  # report() would guess the in-domain site; site_summary names it
        print(format_report(metrics))
        print("\n" + site_summary(model, splits, extras, metrics))
    from cbm.cli import _concept_eval

    if _concept_eval.wanted(args):
        metrics["concepts"], text = _concept_eval.run(model, splits, args)
        print("\n" + text)
    if args.json:
        atomic_write_json(args.json, metrics)
    return 0
