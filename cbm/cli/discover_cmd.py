"""`cbm discover MODEL_DIR`: find image groups linked to one class that no concept of the model names.

    cbm discover runs/birds                                  # the val split of MODEL_DIR/data.npz
    cbm discover runs/birds --data ~/.cache/cbmkit/embeddings/<entry> --images photos/ --out found/
    cbm discover runs/birds --split train --top 5 --json
    cbm discover runs/birds --out found/ --evidence 4        # + where the class evidence lies
    cbm discover runs/knobo --concepts bank/                 # KnoBo: what the concepts name, from their texts

Prints a ranked table: the class each group pushes toward, its images, the share of that class's
images in it against the share of the other classes', and the score (class correlation times how
clearly the images split; about 0 for noise). With --out, writes candidates.json (indices and ids of
each group's positives and negatives, for `cbm edit MODEL add-concept --from-candidate
DIR/candidates.json#RANK --name NAME`) and a picture per candidate when the images are reachable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: example images per row of a candidate's picture
GRID = 8


def add_parser(sub) -> None:
    p = sub.add_parser("discover", help="find class-linked image groups that no concept names (shortcuts)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    p.add_argument("--data", metavar="CACHE_OR_NPZ",
                   help="splits .npz or EmbeddingStore folder (cbm embed) of the training site "
                        "(default: MODEL_DIR/data.npz)")
    p.add_argument("--split", default="val", help="split to search (default val; the training site's train or val)")
    p.add_argument("--seed", type=int, default=0, help="seed of the 60/20/20 split of an embedding cache")
    p.add_argument("--top", type=int, default=10, help="candidates listed (default 10)")
    p.add_argument("--out", metavar="DIR", help="write DIR/candidates.json and a picture per candidate")
    p.add_argument("--images", metavar="ROOT",
                   help="folder an embedding cache's image ids are relative to (the folder given to cbm embed)")
    p.add_argument("--evidence", type=int, default=0, metavar="N",
                   help="with --out: occlusion maps of the class score on N images per candidate "
                        "(re-encodes each image about 50 times with the model's encoder)")
    p.add_argument("--concepts", metavar="BANK_DIR",
                   help="the concept bank given to cbm train (text vectors): what the concepts name, for a model "
                        "that grounds its concepts (KnoBo), whose saved predictors can absorb the shortcut")
    p.add_argument("--json", action="store_true", help="print the candidates as JSON instead of a table")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from cbm.cli.eval_cmd import check_compatible
    from cbm.data import load_training_data
    from cbm.edits.discover import discover_shortcuts, save_candidates
    from cbm.edits.history import EditSession
    from cbm.exceptions import DataError, unknown_name_message

    if args.top < 1:
        raise ValueError(f"--top must be >= 1; got {args.top}.")
    if args.evidence < 0:
        raise ValueError(f"--evidence must be >= 0; got {args.evidence}.")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be in 0..{2**32 - 1}; got {args.seed}.")
    model = EditSession(args.model).model
    data = args.data or str(Path(args.model) / "data.npz")
    splits, extras = load_training_data(data, args.seed, require_train=False)
    if args.split not in splits:
        raise DataError(unknown_name_message("split", args.split, splits) + f" (in --data {data!r})")
    check_compatible(model, {args.split: splits[args.split]}, extras, f"--data {data!r}")
    split = splits[args.split]
    X, y = split["X"], np.asarray(split["y"]).astype(str)
    ids = split.get("ids")
    start = time.perf_counter()
    _progress(f"searching {len(y)} images of split {args.split!r} ({X.shape[1]}-d) ...")
    cands = discover_shortcuts(model, X, y, top=args.top, random_state=args.seed,
                               concept_vectors=_bank_vectors(model, args.concepts) if args.concepts else None)
    _progress(f"done in {time.perf_counter() - start:.1f} s")
    meta = {"model": str(Path(args.model).resolve()), "version": getattr(model, "version_", None),
            "data": str(Path(data).resolve()), "split": args.split, "seed": args.seed}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = save_candidates(out / "candidates.json", cands, ids=ids, **meta)
        note = _pictures(model, cands, data, args, split, out)
    if args.json:
        print(json.dumps({**meta, "candidates": [_summary(c, ids) for c in cands]}, indent=2))
    else:
        print(_table(cands, len(y), args.split))
    if args.out:
        print(f"wrote {path}" + (f"; {note}" if note else ""), file=sys.stderr if args.json else sys.stdout)
    return 0


def _bank_vectors(model, bank_dir: str) -> np.ndarray:
    """Vectors of ``bank_dir``'s concepts that the model reads (by name), plus the model's added ones."""
    from cbm.bank import ConceptBank
    from cbm.exceptions import DataError

    bank = ConceptBank.load(bank_dir)
    if bank.vectors is None:
        raise DataError(f"--concepts {bank_dir!r} has no concept vectors; pass the bank with text vectors "
                        "(cbm concepts generate --source text|labo ... --encoder ...).")
    names = [n for n in model.concept_names_ if n in bank.names]
    if not names:
        raise DataError(f"None of the model's concepts (e.g. {model.concept_names_[:3]}) is in --concepts "
                        f"{bank_dir!r}; pass the bank the model was trained with.")
    return bank.vectors[[bank.index(n) for n in names]]


def _progress(msg: str) -> None:
    print(f"cbm discover: {msg}", file=sys.stderr, flush=True)


def _summary(c, ids: Any) -> dict[str, Any]:
    d = c.to_dict()
    for k in ("indices", "class_indices", "direction", "n_samples"):
        d.pop(k)
    if ids is not None:
        arr = np.asarray(ids).astype(str)
        d["positive_ids"], d["negative_ids"] = arr[d["positives"]].tolist(), arr[d["negatives"]].tolist()
    return d


def _table(cands: list, n: int, split: str) -> str:
    if not cands:
        return f"no image group of split {split!r} ({n} images) is linked to one class apart from the concepts"
    head = f"{'rank':>4}  {'class':<20} {'images':>6}  {'in class':>8}  {'elsewhere':>9}  {'score':>6}  " \
           f"{'support':>7}  {'reliance':>8}"
    lines = [head]
    for c in cands:
        lines.append(f"{c.rank:>4}  {c.class_name[:20]:<20} {len(c.indices):>6}  {c.share_in_class:>8.0%}  "
                     f"{c.share_elsewhere:>9.0%}  {c.score:>6.3f}  {c.support:>7.2f}  {c.reliance:>+8.3f}")
    lines.append("score: class correlation x how clearly the images split (about 0 for noise, 0.4+ for a "
                 "shortcut on most of a class); support: share the concepts span; reliance: drop of the "
                 "class's probability without it")
    return "\n".join(lines)


def _image_source(data: str, split_name: str, split: dict, root: str | None):
    """A function row -> image (array or path), or None and the reason there are no pictures."""
    path = Path(data)
    if path.is_file():
        from cbm.data.evalfile import load_eval_data

        images = load_eval_data(path).get(split_name, {}).get("images")
        if images is None:
            return None, f"{data!r} has no images_{split_name} array, so there are no pictures"
        return (lambda i: images[i]), None
    if path.is_dir():
        ids = split.get("ids")
        if ids is None:
            return None, "the embedding cache records no image ids, so there are no pictures"
        base = Path(root) if root else None
        first = Path(str(ids[0]))
        if not first.is_absolute() and base is None:
            return None, ("the cache's image ids are relative paths; pass --images ROOT (the folder given to "
                          "cbm embed) for pictures")

        def resolve(i: int) -> Path:
            p = Path(str(ids[i]))
            return p if p.is_absolute() else base / p

        if not resolve(0).is_file():
            return None, f"image {str(resolve(0))!r} is not there; pass --images ROOT (the folder given to cbm embed)"
        return resolve, None
    return None, "synthetic data has no images"


def _pictures(model, cands: list, data: str, args, split: dict, out: Path) -> str | None:
    """Write candidate-RR.png per candidate (examples; evidence maps with --evidence); a note on what is missing."""
    from cbm._images import image_grid
    from cbm.data.images import read_image

    if not cands:
        return None
    source, why = _image_source(data, args.split, split, args.images)
    if source is None:
        return why

    def load(i: int):
        im = source(i)
        return read_image(im) if isinstance(im, Path) else im

    encoder, note = None, None
    if args.evidence:
        from cbm.encoders.rebuild import encoder_for
        from cbm.exceptions import CBMError

        try:
            encoder = encoder_for(model)
        except (CBMError, ValueError, OSError) as e:
            note = f"no evidence maps: {e}"
    X = split["X"]
    for c in cands:
        _progress(f"pictures of candidate {c.rank} of {len(cands)} ...")
        pos, neg = c.concept_examples()
        pos = pos[np.argsort(-(X[pos] @ c.direction), kind="stable")][:GRID]  # the clearest members first
        neg = neg[:GRID]
        rows = [load(i) for i in pos] + [None] * (GRID - len(pos)) + [load(i) for i in neg]
        if encoder is not None:
            rows += [None] * (GRID - len(neg)) + _evidence(model, c, [load(i) for i in pos[:args.evidence]], encoder)
        tiles = [r if r is not None else np.full((8, 8, 3), 255, np.uint8) for r in rows]
        image_grid(tiles, columns=GRID).save(out / f"candidate-{c.rank:02d}.png")
    return note or ("pictures: candidate-RR.png (top row: in the group; second: same class, outside it"
                    + ("; third: where the class evidence lies" if encoder is not None else "") + ")")


def _evidence(model, cand, images: list, encoder) -> list:
    from cbm.concept_maps import overlay
    from cbm.edits.discover import candidate_evidence

    maps = candidate_evidence(model, images, cand, encoder)
    return [overlay(im, np.clip(m, 0, None)) for im, m in zip(images, maps, strict=True)]
