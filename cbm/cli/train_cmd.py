"""`cbm train`: fit a concept bottleneck model on cached embeddings and save a model directory.

    cbm train --method labo --concepts BANK_DIR --data splits.npz --out runs/labo
    cbm train --method sparse-cbm --objective gumbel --data synthetic --out runs/demo
    cbm train --method knobo --concepts BANK_DIR --data splits.npz --param lam=0.5 --out runs/knobo

``--data`` is a ``.npz`` with ``X_train, y_train`` (and optional ``X_val, y_val``, any held-out
``X_<split>, y_<split>``, ``domains_*, ids_*, concepts_*, class_names, class_embeddings, encoder_spec``;
see EPILOG), an EmbeddingStore entry folder (``cbm embed`` output: the manifest's ``split`` column
gives train/val/test, held-out splits are divided by the ``site`` column as ``test@<site>``; without
a split column, a 60/20/20 split stratified by ``--seed``, said on stderr), or ``synthetic`` for a
:func:`cbm.make_concept_world` demo (its concept bank is used when ``--concepts`` is not given).
``MODEL_DIR/data.npz`` gets every split, train and val included, in the same layout.

Multi-label findings (several per image): give ``y_<split>`` in the ``.npz`` as a 0/1 indicator
matrix (N, L) and ``class_names`` naming its L columns (the findings; e.g. ``MultiLabelBinarizer``
output). The model then has one sigmoid output per finding (``--method pcbm``, ``knobo``,
``linear-probe`` or ``dense-head``); KnoBo grounds its concepts on ``concepts_train`` or on the
bank's prior over the findings.

Models are trained on class *names* (folder names, manifest labels, ``class_names``). A bank's class
prior is matched to them by name; a mismatch is refused unless ``--class-map DATA=BANK,...`` maps it.
A bank whose vectors come from another encoder than the embeddings is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def add_parser(sub) -> None:
    from cbm.models import list_methods

    p = sub.add_parser("train", help="train a concept bottleneck model and save a model directory",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=list_methods(), help="the CBM method")
    p.add_argument("--concepts", metavar="BANK_DIR", help="concept bank folder (ConceptBank.save)")
    p.add_argument("--data", metavar="PATH",
                   help="splits .npz, EmbeddingStore folder, or 'synthetic'; a .npz whose y_<split> are "
                        "0/1 matrices (N, findings) with class_names naming the columns trains a "
                        "multi-label model (one sigmoid per finding)")
    p.add_argument("--world", action="store_true", help="same as --data synthetic")
    p.add_argument("--class-map", metavar="MAP",
                   help="match data classes to the bank's deliberately: 'data=bank,...' or a .json file")
    p.add_argument("--class-template", default="a photo of a {}.",
                   help="prompt for class text embeddings (CMS from an embedding folder)")
    p.add_argument("--objective", choices=["gumbel", "contrastive", "l1", "cos3"],
                   help="Sparse-CBM bottleneck objective")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="estimator parameter (JSON value), repeatable: --param lr=0.01")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: the method's)")
    p.add_argument("--note", default="", help="note stored with the saved version")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


EPILOG = """\
the .npz layout (--data FILE.npz, and MODEL_DIR/data.npz that cbm train writes):
  X_<split>        (N, d) float32     embeddings of split <split>
  y_<split>        (N,) str or int    class names, or indices into class_names;
                   (N, L) 0/1 int     multi-label: one column per finding in class_names
  domains_<split>  (N,) str           site of each row (optional)
  ids_<split>      (N,) str           id of each row, e.g. the manifest path (optional)
  concepts_<split> (N, M)             per-image concept labels (optional; KnoBo grounding)
  class_names      (K,) str           class (or finding) names
  class_embeddings (K, d) float32     class text embeddings in class_names order (optional; CMS)
  encoder          () str             fingerprint of the encoder that made X (optional)
  encoder_spec     () str             JSON of how to rebuild it, as an embedding cache's manifest.json
                                      "encoder_spec" ({"name", "pretrained", "fingerprint", ...});
                                      without it `cbm explain --image` needs --encoder
split names: train (fitted), val (early stopping), any other name is held out (test, shifted ...);
  from an embedding cache with a site column, held-out splits are test@<site> (one per site), while
  train and val keep every site in domains_<split>. MODEL_DIR/data.npz holds every split, so
  refitting edits read train and val from it, and `cbm eval MODEL_DIR` reports each split and site.
"""

#: Methods that read the bank's class-concept prior (so its classes must match the data's by name).
PRIOR_METHODS = ("labo", "knobo")
#: Methods that learn multi-label findings (one sigmoid per finding on one shared concept layer).
MULTILABEL_METHODS = ("pcbm", "knobo", "linear-probe", "dense-head")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "objective=l1"]`` -> ``{"lr": 0.01, "objective": "l1"}`` (JSON values, else text)."""
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE; got {item!r}.")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def build_model(args, extras: dict[str, Any]):
    """The estimator for ``--method`` with the bank, objective and ``--param`` values."""
    from cbm.bank import ConceptBank, match_classes
    from cbm.models import create_model, get_model_class

    params = parse_params(args.param)
    names = get_model_class(args.method)().get_params()
    if "concepts" in names:
        if args.concepts:
            bank = ConceptBank.load(args.concepts)
        elif extras.get("bank") is not None:
            bank = extras["bank"]
        else:
            raise ValueError(f"--method {args.method} needs --concepts BANK_DIR (a saved concept bank).")
        bank.check_encoder(extras.get("fingerprint"))
        if args.method in PRIOR_METHODS or getattr(args, "class_map", None):
            bank = match_classes(bank, extras.get("train_classes", []), getattr(args, "class_map", None))
        params["concepts"] = bank
    if args.objective:
        if "objective" not in names:
            raise ValueError(f"--objective applies to sparse-cbm only, not {args.method!r}.")
        params["objective"] = args.objective
    for key, val in (("random_state", args.seed), ("device", args.device),
                     ("verbose", not args.quiet)):
        if key in names and val is not None and key not in params:
            params[key] = val
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for {args.method}; it accepts {sorted(names)}.")
    return create_model(args.method, **params)


def _run(args) -> int:
    from cbm.cli.eval_cmd import site_summary
    from cbm.data import load_training_data
    from cbm.data.training import fit_arguments
    from cbm.io import check_target
    from cbm.metrics import format_report, report

    check_target(args.out)  # a file there is refused before any training
    spec = "synthetic" if args.world else args.data
    if not spec:
        raise ValueError("cbm train needs --data PATH (or --world for the synthetic demo).")
    splits, extras = load_training_data(spec, args.seed)
    train = splits["train"]
    findings = extras.get("findings")
    if findings is not None:
        return _run_multilabel(args, spec, splits, extras, findings)
    extras["train_classes"] = sorted({str(c) for c in np.asarray(train["y"]).tolist()})
    model = build_model(args, extras)
    if "class_embeddings" in model.get_params() and model.class_embeddings is None \
            and extras.get("class_embeddings") is None:
        extras["class_embeddings"] = class_text_embeddings(extras, model.concepts, args.class_template)
    model.fit(train["X"], train["y"], **fit_arguments(model, splits, extras))
    metrics = report(model, splits)
    metrics["domains"] = None  # report() would guess the in-domain site; site_summary names it
    sites = site_summary(model, splits, extras, metrics)
    version = _save(model, args, spec, splits, extras, metrics, f"cbm train --method {args.method}")
    print(format_report(metrics))
    print("\n" + sites)
    print(f"saved {args.method} with {len(model.concept_names_)} concepts to {args.out} (version {version})")
    _print_notes(spec, extras)
    return 0


def _print_notes(spec, extras: dict) -> None:
    """Say on stderr what the data left to chance or unrecorded: a random split, no encoder record."""
    from cbm.data.training import encoder_record, split_note

    note = split_note(spec, extras)
    if note:
        print(note, file=sys.stderr)
    if not encoder_record(extras):
        print(f"note: --data {str(spec)!r} records no image encoder (no 'encoder_spec' or 'encoder' array), so "
              "`cbm explain --image` will need --encoder NAME [--pretrained WEIGHTS]; store the encoder's spec as "
              "'encoder_spec' (see cbm train --help) to record it.", file=sys.stderr)


def _run_multilabel(args, spec, splits: dict, extras: dict, findings: list[str]) -> int:
    """``cbm train`` on a multi-label indicator matrix: one sigmoid per finding (MultiLabelCBM)."""
    from cbm.data.training import fit_arguments
    from cbm.models.multilabel import MultiLabelCBM, finding_metrics, format_finding_metrics

    if args.method not in MULTILABEL_METHODS:
        raise ValueError(f"--data {str(spec)!r} has multi-label targets (2-D y_train); --method "
                         f"{args.method!r} cannot learn them. Use one of {', '.join(MULTILABEL_METHODS)}.")
    extras["train_classes"] = list(findings)
    base = build_model(args, extras)
    model = MultiLabelCBM(base, finding_names=findings)
    train = splits["train"]
    model.fit(train["X"], train["y"], **fit_arguments(base, splits, extras))
    metrics = finding_metrics(model, splits)
    version = _save(model, args, spec, splits, extras, metrics,
                    f"cbm train --method {args.method} (multi-label)", class_names=findings)
    print(format_finding_metrics(metrics))
    print(f"saved multi-label {args.method} ({len(findings)} findings, {len(model.concept_names_)} concepts) "
          f"to {args.out} (version {version})")
    _print_notes(spec, extras)
    return 0


def _save(model: Any, args, spec, splits: dict, extras: dict, metrics: Any, note: str,
          class_names: list[str] | None = None) -> int:
    """Save ``model`` as a new version of ``args.out`` with every split (``data.npz``, train and val included)."""
    from cbm.data.evalfile import save_eval_data
    from cbm.data.training import encoder_record
    from cbm.io import save_model

    record = dict(extras.get("splits") or {})
    if "train_sites" not in record and "domains" in splits["train"]:
        record["train_sites"] = sorted({str(d) for d in np.asarray(splits["train"]["domains"]).tolist()})
    fingerprints = {"data": str(spec), "encoder": encoder_record(extras), "splits": record or None}
    version = save_model(model, args.out, note=args.note or note, metrics=metrics, fingerprints=fingerprints)
    save_eval_data(Path(args.out) / "data.npz", splits, class_names=class_names, encoder=encoder_record(extras))
    return version


def class_text_embeddings(extras: dict[str, Any], bank: Any, template: str) -> np.ndarray | None:
    """Text embeddings (K, d) of the training classes, in sorted name order, by the image encoder.

    The encoder is rebuilt from the embedding cache's record (or the bank's) and checked against the
    images' fingerprint, so class texts and images share one space. None when nothing is recorded.
    """
    from cbm.encoders.rebuild import rebuild_encoder
    from cbm.encoders.record import EncoderRecord

    saved = extras.get("encoder")
    if not isinstance(saved, dict) and bank is not None:
        saved = (bank.metadata or {}).get("encoder")
    if not isinstance(saved, dict):
        return None
    record = EncoderRecord.read(saved)
    encoder = rebuild_encoder(record)
    fp = extras.get("fingerprint")
    if fp and encoder.fingerprint != fp:
        return None
    if not getattr(encoder, "supports_text", False):
        raise ValueError(f"The image encoder {record.name!r} has no text tower, so class names cannot be "
                         "embedded; CMS needs a CLIP-style encoder (cbm embed --encoder openclip:...).")
    return np.asarray(encoder.encode_text([template.format(c) for c in extras["train_classes"]]), np.float32)
