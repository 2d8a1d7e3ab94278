"""`cbm explain`: why the model predicts what it does for one image or one evaluation sample.

    cbm explain runs/birds --sample test-0007               # an id (or row) of MODEL/data.npz
    cbm explain runs/birds --sample 12 --data splits.npz --split shifted
    cbm explain runs/birds --image photo.jpg                 # embeds with the model's encoder
    cbm explain runs/birds --image photo.jpg --pretrained moved/ckpt.safetensors
    cbm explain runs/birds --image photo.jpg --encoder mobilenet_v2 --image-size 96   # model records none

The model is read with its unsaved edits applied (see `cbm edit`).
A multi-label model is explained per finding: each finding's probability and the concepts for and
against it, most likely finding first (``--class FINDING`` for one).
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain one prediction: concept contributions, margin, what-ifs",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="an image file (needs the encoder recorded with the model)")
    src.add_argument("--sample", metavar="ID", help="a sample id (ids_<split>) or row number in --data")
    p.add_argument("--pretrained", metavar="WEIGHTS",
                   help="with --image: the encoder's checkpoint file, if it moved since training")
    p.add_argument("--encoder", metavar="NAME",
                   help="with --image: the encoder to embed it with when the model records none (trained from a "
                        ".npz without encoder_spec); checked against a recorded fingerprint")
    p.add_argument("--image-size", type=int, default=None, help="with --encoder: its input resolution in pixels")
    p.add_argument("--data", metavar="NPZ", help="evaluation .npz (default: MODEL_DIR/data.npz)")
    p.add_argument("--split", help="split to look in (default: test, shifted, val, train)")
    p.add_argument("--class", dest="cls", help="explain this class instead of the predicted one")
    p.add_argument("--top", type=int, default=5, help="concepts listed for and against (default 5)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse --image files over N pixels (default $CBM_MAX_IMAGE_PIXELS or 100 million)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from cbm.edits.history import EditSession
    from cbm.edits.preview import load_eval_data, read_sample
    from cbm.encoders.rebuild import encoder_for
    from cbm.explain import counterfactual_table, embed_image, explain, softmax
    from cbm.models.source_repair import model_embeddings, source_repair

    image = None
    if args.image:  # read first: a bad file is named before any model or encoder loads
        from cbm.data.images import read_image

        image = read_image(args.image, max_pixels=args.max_pixels)
    model = EditSession(args.model).model
    label = None
    if image is not None:
        x, where = embed_image(model, image, _image_encoder(model, args, encoder_for)), args.image
    else:
        data = Path(args.data) if args.data else Path(args.model) / "data.npz"
        split, row, x, label = read_sample(data, args.sample, args.split)
        x, where = x[None], f"sample {args.sample!r} ({split} row {row})"
        if source_repair(model) is not None:  # the pooled embedding still carries the artifact: use the image
            images = load_eval_data(data).get(split, {}).get("images")
            x = model_embeddings(model, x, None if images is None else images[row:row + 1],
                                 what=f"the pooled embedding of sample {args.sample!r} ({data} has no images_{split})")
    if getattr(model, "multilabel_", False):
        print(explain_findings(model, x, where, label, args.cls, args.top))
        _print_ood(Path(args.data) if args.data else Path(args.model) / "data.npz", x)
        return 0
    e = explain(model, x, target=args.cls, top=args.top)
    p = softmax(e.logits)[0]
    pred = e.class_names[int(e.pred[0])]
    print(f"{where}: predicted {pred!r} ({p.max():.0%})" + ("" if label is None else f", true class {str(label)!r}"))
    print(e.summary(0))
    flips = counterfactual_table(model, e.activations[0], None if e.residual is None else e.residual[0])
    flips = flips[flips["flips"]]
    if len(flips):
        print("switching off one concept changes the prediction: " + ", ".join(
            f"{r.concept} -> {r.new_prediction}" for r in flips.head(args.top).itertuples()))
    else:
        print("no single concept, switched off, changes the prediction")
    _print_ood(Path(args.data) if args.data else Path(args.model) / "data.npz", x)
    return 0


def _image_encoder(model, args, encoder_for):
    """The encoder recorded with the model, or ``--encoder NAME`` (checked against any recorded fingerprint)."""
    if not args.encoder:
        return encoder_for(model, args.pretrained)
    from cbm.encoders import create_encoder
    from cbm.encoders.record import EncoderRecord, model_encoder_record
    from cbm.exceptions import EncoderMismatchError

    kw = {} if args.image_size is None else {"image_size": args.image_size}
    encoder = create_encoder(args.encoder, pretrained=args.pretrained, **kw)
    expected = (model_encoder_record(model) or EncoderRecord()).fingerprint
    if expected and encoder.fingerprint != expected:
        raise EncoderMismatchError(f"--encoder {args.encoder!r} has fingerprint {encoder.fingerprint!r}, but the model "
                                   f"was trained on {expected!r}; leave out --encoder to use the recorded one.")
    bank = getattr(model, "concepts_", None)
    if bank is not None and hasattr(bank, "check_encoder"):
        bank.check_encoder(encoder.fingerprint)
    return encoder


def explain_findings(model, x, where: str, label=None, finding: str | None = None, top: int = 5) -> str:
    """Per-finding explanation of one sample of a multi-label model, most likely finding first."""
    from cbm.explain import class_index, explain
    from cbm.models.multilabel import PRESENT_THRESHOLD

    p = model.predict_proba(x)[0]
    names = model.class_names_
    order = [class_index(model, finding)] if finding else list(map(int, (-p).argsort(kind="stable")))
    present = [f"{names[k]} ({p[k]:.0%})" for k in map(int, (-p).argsort(kind="stable")) if p[k] >= PRESENT_THRESHOLD]
    lines = [f"{where}: findings " + (", ".join(present) if present else f"none at {PRESENT_THRESHOLD:.0%} or above")
             + ("" if label is None else f"; true findings {list(label)}")]
    for k in order:
        e = explain(model, x, target=names[k], top=top)
        lines.append(f"finding {names[k]!r}: probability {p[k]:.1%} ({'present' if p[k] >= PRESENT_THRESHOLD else 'absent'}), "
                     f"logit {e.logits[0, k]:+.3f}")
        for side, idx in (("for", e.top_positive[0]), ("against", e.top_negative[0])):
            c = e.contributions[0]
            parts = [f"{e.concept_names[j]} ({c[j]:+.3f})" for j in idx if c[j] != 0 and (c[j] > 0) == (side == "for")]
            lines.append(f"  {side}: " + (", ".join(parts) if parts else "none"))
        lines.append(f"  intercept: {e.intercept[k]:+.3f}")
    return "\n".join(lines)


def _print_ood(data: Path, x) -> None:
    """How unlike the training sites' images the image or sample is, with the score's scale and
    threshold (needs embeddings of the training sites in the evaluation data; else says so)."""
    from cbm.edits.preview import load_eval_data
    from cbm.exceptions import DataError
    from cbm.ood import describe_score, fit_ood, image_level

    if not data.is_file():
        print(f"out-of-distribution score: not available ({data} is missing)")
        return
    try:
        det = fit_ood({s: image_level(d["X"]) for s, d in load_eval_data(data).items()})
        score = float(det.score(image_level(x))[0])
    except DataError as e:
        print(f"out-of-distribution score: not available ({e})")
        return
    print(describe_score(score, det.threshold_, det.flag_rate))
