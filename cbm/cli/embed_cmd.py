"""`cbm embed`: image folder, manifest or built-in dataset -> cached embeddings.

    cbm embed photos/ --encoder mobilenet_v2 --image-size 96
    cbm embed data.csv --encoder openclip:ViT-B-32 --pretrained ~/ckpt/vit-b-32.safetensors
    cbm embed fashion-mnist:test --limit 2000
    cbm embed photos/ --image-size 224 --tokens        # 7 x 7 patch tokens for `cbm train --method cct`
    cbm embed photos/ --engine ray --address auto      # shards filled by the workers of a Ray cluster

Prints a summary (images, skipped, dim, throughput, cache path); a second run says "cache hit".
A manifest's ``split`` and ``site`` (or ``domain``, ``group``) columns are kept per image in the
cache: ``cbm train --data CACHE`` trains on split train, validates on val and holds out the rest
per site (``test@<site>``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BUILTIN = ("fashion-mnist:train", "fashion-mnist:test", "digits")


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="embed images into a cached embedding store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="image folder (<folder>/<class>/<image>), .csv/.jsonl manifest, "
                                  f"or one of {', '.join(BUILTIN)}")
    p.add_argument("--encoder", default="mobilenet_v2",
                   help="encoder name: mobilenet_v2 (default, offline ImageNet), openclip:<arch>")
    p.add_argument("--pretrained", default=None,
                   help="weights tag or local checkpoint path (.pt/.bin/.safetensors); 'random' for none")
    p.add_argument("--image-size", type=int, default=None, help="input resolution in pixels")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $CBM_CACHE_DIR or ~/.cache/cbmkit)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (built-in datasets)")
    p.add_argument("--root", default=None, help="folder that manifest paths are relative to")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="skip (and count) images over N pixels (default $CBM_MAX_IMAGE_PIXELS or 100 million)")
    p.add_argument("--tokens", action="store_true",
                   help="cache patch tokens (N, T, d) instead of pooled embeddings (for --method cct)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process; ray: Ray actors fill the shards "
                        "(pip install 'cbmkit[ray]'; the cache dir must be on storage all nodes see)")
    p.add_argument("--address", default=None,
                   help="--engine ray: cluster to use ('auto', ray://host:10001; default $RAY_ADDRESS, "
                        "else a local one; $CBM_RAY_TIMEOUT: seconds to wait for it, default 15)")
    p.add_argument("--workers", type=int, default=None,
                   help="--engine ray: number of actors (default: one per CPU of the cluster)")
    p.add_argument("--cpus-per-worker", type=int, default=1,
                   help="--engine ray: CPUs (torch threads) per actor (default 1)")
    p.set_defaults(func=_run)


def _dataset(args):
    from cbm.data import image_folder, load_digits_images, load_fashion_mnist, read_manifest

    src = args.source
    if src.startswith("fashion-mnist"):
        split = src.split(":", 1)[1] if ":" in src else "train"
        return load_fashion_mnist(split, limit=args.limit)
    if src == "digits":
        return load_digits_images(args.limit)
    path = Path(src).expanduser()
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json"):
        return read_manifest(path, root=args.root)
    if path.is_file():
        raise ValueError(f"{src!r} is a file but not a .csv/.jsonl manifest; pass an image folder or a manifest.")
    return image_folder(path)


def _run(args) -> int:
    import warnings

    from cbm.encoders import create_encoder
    from cbm.store import EmbeddingStore

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}.")
    if args.engine == "ray":
        from cbm.distributed import check_ray_address, import_ray

        import_ray()  # before any work: one clear message when Ray is missing
        check_ray_address(args.address)  # ... or when the cluster does not answer
    if args.max_pixels is not None and args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1; got {args.max_pixels}.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = _dataset(args)
    if args.max_pixels is not None and hasattr(dataset, "max_pixels"):
        dataset.max_pixels = args.max_pixels
    for w in caught:  # e.g. non-image files that were ignored
        print(f"warning: {w.message}", file=sys.stderr)
    kw = {"device": args.device}
    if args.image_size is not None:
        kw["image_size"] = args.image_size
    encoder = create_encoder(args.encoder, pretrained=args.pretrained, **kw)
    store = EmbeddingStore(args.cache_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped")  # the summary below reports them
        cache = store.get_or_compute(encoder, dataset, batch_size=args.batch_size, force=args.force,
                                     kind="tokens" if args.tokens else "embeddings",
                                     engine=args.engine, address=args.address, workers=args.workers,
                                     cpus_per_worker=args.cpus_per_worker,
                                     progress=not args.no_progress and sys.stderr.isatty())
    stats = cache.stats
    print(f"{len(dataset)} images in {dataset.name!r}, encoder {encoder.name} ({encoder.fingerprint})")
    print(stats.summary())
    for sk in stats.skipped[1:5]:
        print(f"  also skipped: {sk['reason']}")
    if stats.n_skipped > 5:
        print(f"  ... and {stats.n_skipped - 5} more (listed in {stats.path / 'manifest.json'})")
    kept = _kept_columns(cache)
    if kept:
        print(kept)
    return 0


def _kept_columns(cache) -> str | None:
    """The line naming the manifest's split and site columns kept in the cache (None without them)."""
    from collections import Counter

    parts = []
    if cache.splits is not None:
        parts.append("split (" + ", ".join(f"{k} {v}" for k, v in Counter(cache.splits).items()) + ")")
    if cache.domains is not None:
        parts.append("site (" + ", ".join(sorted(set(cache.domains))) + ")")
    return f"kept per image: {' and '.join(parts)}; cbm train --data uses them" if parts else None
