"""`cbm predict`: a model over a folder, manifest or embedding cache -> a CSV of explained predictions.

    cbm predict runs/xray scans/ --out predictions.csv              # images (DICOM too), embedded
    cbm predict runs/xray ~/.cache/cbmkit/embeddings/<entry> --out p.csv   # `cbm embed` output
    cbm predict runs/xray manifest.csv --out p.csv --top 5

One row per image: id, predicted class, its probability (confidence), a probability per class, the top concepts for and
against (with contributions), the out-of-distribution score and flag (when MODEL_DIR has its
evaluation data.npz) and the model version. The score is a Mahalanobis distance to the training
images' embeddings: 0 at their centre, larger is more unusual, no upper limit; the flag is 1 above
the threshold that flags 5% of validation images (printed at the end). A multi-label model writes the findings called
(probability >= 0.5) and one probability per finding. Run it again to resume: ids already in
the CSV are skipped.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict and explain a folder, manifest or cache into a CSV",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL_DIR", help="model directory")
    p.add_argument("source", metavar="SOURCE",
                   help="image folder, CSV/JSONL manifest, or embedding cache folder (cbm embed)")
    p.add_argument("--out", required=True, metavar="CSV", help="output CSV (appended to: resumable)")
    p.add_argument("--top", type=int, default=3, help="concepts listed for and against (default 3)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per batch (default 4096 embeddings or 32 images)")
    p.add_argument("--root", help="folder relative manifest paths are resolved against")
    p.add_argument("--pretrained", metavar="WEIGHTS",
                   help="the encoder's checkpoint file, if it moved since training")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="skip images over N pixels (default $CBM_MAX_IMAGE_PIXELS or 100 million)")
    p.add_argument("--no-ood", action="store_true",
                   help="leave out the out-of-distribution columns (ood_score: Mahalanobis distance to the "
                        "training embeddings, 0 = their centre, larger = more unusual; ood_flag: 1 above the "
                        "threshold that flags 5%% of validation images)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from cbm.predict import predict_to_csv

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}.")
    stats = predict_to_csv(args.model, args.source, args.out, top=args.top,
                           batch_size=args.batch_size, pretrained=args.pretrained, root=args.root,
                           max_pixels=args.max_pixels, progress=not args.no_progress,
                           with_ood=not args.no_ood)
    for message in stats.skipped[:5]:
        print(f"  skipped: {message}")
    print(stats.summary())
    return 0
