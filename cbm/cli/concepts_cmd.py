"""`cbm concepts generate|filter|select|search|show`: make, clean, pick and read concept banks.

Argument parsing only; the work is done by :mod:`cbm.concepts`. Banks are folders written by
``ConceptBank.save`` (``bank.json`` + ``bank.safetensors``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def add_parser(sub) -> None:
    p = sub.add_parser("concepts", help="generate, filter, select and show concept banks")
    cs = p.add_subparsers(dest="concepts_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])

    from cbm.concepts import list_sources

    g = cs.add_parser("generate", help="make a concept bank (" + ", ".join(list_sources()) + ")")
    g.add_argument("--source", required=True, choices=list_sources(),
                   help="labo: a {class: [concepts]} .json embedded by --encoder's text tower (class prior kept)")
    g.add_argument("--out", required=True, type=Path, help="output bank folder")
    g.add_argument("--classes", help="class names: a .txt file (one per line) or comma list")
    g.add_argument("--input", type=Path, help="file: concept file; text: concept list (.txt); "
                   "labo: {class: [concepts]} .json; textbook: corpus folder; cav: embeddings .npz or "
                   "image folder root")
    g.add_argument("--model", help="LLM model name (llm; textbook: without it, concepts are "
                   "keyphrases of the retrieved passages)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint (default CBM_LLM_BASE_URL)")
    g.add_argument("--family", default="labo", help="llm prompt family: labo, lfcbm, or "
                   "comma-separated template names/paths")
    g.add_argument("--cache-dir", type=Path, help="LLM response cache folder")
    g.add_argument("--no-cache", action="store_true", help="llm, textbook: neither read nor write "
                   "the response cache")
    g.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="llm, textbook: seconds per request attempt (default 60)")
    g.add_argument("--max-retries", type=int, default=5, metavar="N",
                   help="llm, textbook: retries per prompt on timeouts, 429 and 5xx (default 5)")
    g.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="llm, textbook: most seconds for all requests together (default: no limit)")
    g.add_argument("--force", action="store_true", help="overwrite an existing bank at --out")
    g.add_argument("--concurrency", type=int, default=4)
    g.add_argument("--top-k", type=int, default=5, help="textbook: passages per class")
    g.add_argument("--encoder", help="encoder name for text/labo/cav/dense retrieval (cbm.encoders); "
                   "use the one given to `cbm embed`")
    g.add_argument("--pretrained", help="the encoder's weights: tag or local checkpoint, as given to `cbm embed`")
    g.add_argument("--image-size", type=int, help="the encoder's input size, as given to `cbm embed`")
    g.add_argument("--method", default="svm", choices=("svm", "linear_svm", "mean_diff"))
    g.add_argument("--template", default="{}", help="text: prompt around each concept")
    g.set_defaults(func=_generate)

    f = cs.add_parser("filter", help="Label-free CBM filters with a removal log")
    f.add_argument("bank", type=Path)
    f.add_argument("--out", required=True, type=Path)
    f.add_argument("--classes", help="class names (default: the bank's)")
    f.add_argument("--encoder", help="text encoder for similarity steps (cbm.encoders name)")
    f.add_argument("--pretrained", help="the encoder's weights: tag or local checkpoint")
    f.add_argument("--images", type=Path, help="image embeddings for the never-fires step: an embedding "
                   "cache folder (`cbm embed`), a .npz with X, or a .npy")
    f.add_argument("--max-length", type=int, default=30)
    f.add_argument("--class-similarity", type=float, default=0.85)
    f.add_argument("--duplicate-similarity", type=float, default=0.9)
    f.add_argument("--activation-cutoff", type=float, default=0.25)
    f.set_defaults(func=_filter)

    s = cs.add_parser("select", help="LaBo submodular selection per class")
    s.add_argument("bank", type=Path)
    s.add_argument("--out", required=True, type=Path)
    budget = s.add_mutually_exclusive_group(required=True)
    budget.add_argument("--per-class", type=int)
    budget.add_argument("--total", type=int)
    s.add_argument("--embeddings", type=Path, help="labelled image embeddings for scores: an embedding "
                   "cache folder (`cbm embed`, as `cbm train` takes) or a .npz with X (N,d) and y (N,)")
    s.add_argument("--class-map", metavar="MAP", help="data class -> bank class: 'data=bank,...' or .json")
    s.add_argument("--score", default="kl", choices=("kl", "negentropy"))
    s.add_argument("--coverage", default="features", choices=("features", "cosine"))
    s.add_argument("--weights", type=float, nargs=2, default=(1e7, 1.0),
                   metavar=("DISCRIMINABILITY", "COVERAGE"))
    s.set_defaults(func=_select)

    q = cs.add_parser("search", help="images that show concepts most (A and not B), streamed from the cache")
    q.add_argument("bank", type=Path, help="bank with vectors in the embeddings' space (CAVs, text towers)")
    q.add_argument("--embeddings", required=True, type=Path,
                   help="embedding cache folder (`cbm embed`) or a .npy array")
    q.add_argument("--concept", action="append", required=True, help="concept to look for (repeatable)")
    q.add_argument("--not", dest="exclude", action="append", default=[], help="concept to avoid (repeatable)")
    q.add_argument("--top", type=int, default=10)
    q.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: Ray tasks search groups of shards of the cache, merged (same answer)")
    q.add_argument("--address", default=None, help="--engine ray: cluster ('auto', ray://host:10001)")
    q.add_argument("--workers", type=int, default=None, help="--engine ray: parallel tasks")
    q.set_defaults(func=_search)

    sh = cs.add_parser("show", help="print a bank as a table with provenance")
    sh.add_argument("bank", type=Path)
    sh.add_argument("--limit", type=int, default=50)
    sh.set_defaults(func=_show)


def _search(args) -> int:
    import torch

    from cbm.concepts import ConceptBank
    from cbm.exceptions import DataError
    from cbm.kernels import concept_search
    from cbm.store import EmbeddingCache

    if args.engine == "ray":
        from cbm.distributed import import_ray

        import_ray()
        if args.embeddings.suffix == ".npy":
            raise DataError(f"--engine ray searches an embedding cache folder (`cbm embed`), not the "
                            f"single array {str(args.embeddings)!r}; drop --engine ray for it.")
    bank = ConceptBank.load(args.bank)
    if bank.vectors is None:
        raise DataError(f"Concept bank {str(args.bank)!r} has no vectors; make it with "
                        "`cbm concepts generate --source cav|text` first.")
    names = list(args.concept) + list(args.exclude)
    query = torch.as_tensor(bank.vectors[[bank.index(n) for n in names]])
    weights = [1.0] * len(args.concept) + [-1.0] * len(args.exclude)
    if args.embeddings.suffix == ".npy":
        store, ids = np.load(args.embeddings, mmap_mode="r"), None
        dim = store.shape[1]
    else:
        store = EmbeddingCache(args.embeddings)
        ids, dim = store.ids, store.dim
        bank.check_encoder(store.manifest.get("encoder"))
    if dim != bank.vectors.shape[1]:
        raise DataError(f"The bank's vectors are {bank.vectors.shape[1]}-d but the embeddings in "
                        f"{str(args.embeddings)!r} are not; use a bank made with the same encoder.")
    if args.engine == "ray":
        scores, idx = store.search(query, weights, args.top, engine="ray", address=args.address,
                                   workers=args.workers)
    else:
        scores, idx = concept_search(store, query, weights, args.top)
    label = " and ".join(args.concept) + "".join(f" and not {n}" for n in args.exclude)
    print(f"top {len(idx)} for {label!r}:")
    for s, i in zip(scores.tolist(), idx.tolist(), strict=True):
        print(f"  {s:+.4f}  {ids[i] if ids is not None else i}")
    return 0


def _classes(arg: str | None) -> list[str] | None:
    if not arg:
        return None
    from cbm.concepts import read_lines

    return read_lines(arg) if Path(arg).suffix == ".txt" else [c.strip() for c in arg.split(",")]


def _encoder(name: str | None, pretrained: str | None = None, image_size: int | None = None):
    """The encoder ``name`` with the given weights (the same as ``cbm embed`` used), or None."""
    if not name:
        if pretrained:
            raise ValueError("--pretrained needs --encoder NAME (the encoder the weights belong to).")
        return None
    from cbm.encoders import create_encoder

    kw = {} if image_size is None else {"image_size": image_size}
    return create_encoder(name, pretrained=pretrained, **kw)


def _generate_encoder(args):
    enc = _encoder(args.encoder, args.pretrained, args.image_size)
    if enc is not None and "weights=random" in str(getattr(enc, "fingerprint", "")):
        print(f"warning: --encoder {args.encoder} has random weights (no --pretrained): its concept vectors match "
              "only images embedded by this very model; pass the --pretrained given to `cbm embed`.",
              file=sys.stderr)
    return enc


#: SourceRequest field -> the flag that gives it
_FLAGS = {"classes": "classes", "input": "input", "encoder": "encoder", "client": "model"}


def _need(args, source) -> None:
    """Refuse, before any encoder or LLM is built, a --source without the flags it needs."""
    missing = [_FLAGS[n] for n in source.needs if not getattr(args, _FLAGS[n])]
    if missing:
        raise ValueError(f"--source {args.source} needs " + ", ".join(f"--{m}" for m in missing))


def _check_out(out: Path, force: bool) -> None:
    """Refuse, before any work, an --out that is a file or an existing bank without --force."""
    from cbm.exceptions import DataError

    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r} is a file; a bank is a folder. Pass a new folder name.")
    if out.is_dir() and any(out.iterdir()) and not force:
        what = "a concept bank" if (out / "bank.json").is_file() else "a folder that is not empty"
        raise DataError(f"--out {str(out)!r} is already {what}; pass --force to overwrite it, or "
                        "choose another --out.")


def _llm_client(args):
    import cbm.concepts as C

    if args.no_cache and args.cache_dir:
        raise ValueError("--no-cache and --cache-dir contradict each other; pass one.")
    if args.max_retries < 0:
        raise ValueError(f"--max-retries must be >= 0; got {args.max_retries}.")
    cache = {"cache_dir": None} if args.no_cache else (
        {"cache_dir": args.cache_dir} if args.cache_dir else {})
    return C.LLMClient(args.model, base_url=args.base_url, concurrency=args.concurrency,
                       timeout=args.timeout, max_retries=args.max_retries,
                       time_budget=args.time_budget, **cache)


def _generate(args) -> int:
    from cbm.concepts import generate_concepts, get_source
    from cbm.exceptions import DataError

    _check_out(args.out, args.force)
    source = get_source(args.source)
    _need(args, source)
    client = _llm_client(args) if args.model and source.reads("client") else None
    if args.source == "textbook" and client is None:
        print("Textbook concepts by keyphrase extraction (no --model, so no LLM)")
    bank = generate_concepts(args.source, classes=_classes(args.classes), input=args.input,
                             encoder=_generate_encoder(args) if args.encoder else None, client=client, family=args.family,
                             top_k=args.top_k, template=args.template, cav_method=args.method)
    if client is not None:
        print(f"LLM usage: {client.usage.as_dict()}")
    dropped = (bank.metadata or {}).get("dropped") or []
    if dropped:
        reasons: dict[str, int] = {}
        for d in dropped:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        print(f"Dropped {len(dropped)} item(s) from the answers: "
              + ", ".join(f"{n} {r}" for r, n in reasons.items()), file=sys.stderr)
    if len(bank) == 0:
        raise DataError(f"--source {args.source} produced no concepts, so nothing was saved to "
                        f"{str(args.out)!r}; check the input (and the LLM's answers).")
    _check_out(args.out, args.force)  # still free: nothing appeared there while we worked
    bank.save(args.out)
    print(f"Saved {len(bank)} concepts ({args.source}) to {args.out}"
          + (f", embedded by {bank.encoder_fingerprint}" if bank.vectors is not None and bank.encoder_fingerprint else ""))
    return 0


def _filter(args) -> int:
    from cbm.bank import ConceptBank
    from cbm.concepts import filter_concepts

    bank = ConceptBank.load(args.bank)
    images = None
    if args.images:
        from cbm.data.training import read_embeddings

        images, _, fp = read_embeddings(args.images)
        bank.check_encoder(fp)
    out, log = filter_concepts(
        bank, _classes(args.classes), _encoder(args.encoder, args.pretrained), images,
        max_length=args.max_length, class_similarity=args.class_similarity,
        duplicate_similarity=args.duplicate_similarity, activation_cutoff=args.activation_cutoff)
    out.save(args.out)
    steps: dict[str, int] = {}
    for e in log:
        steps[e["step"]] = steps.get(e["step"], 0) + 1
    print(f"Kept {len(out)} of {len(bank)} concepts; removed by step: {steps or 'none'}")
    return 0


def _select(args) -> int:
    from cbm.bank import ConceptBank, match_classes
    from cbm.concepts import select_concepts

    bank = ConceptBank.load(args.bank)
    X = y = None
    if args.embeddings:
        from cbm.data.training import read_embeddings

        X, y, fp = read_embeddings(args.embeddings)
        bank.check_encoder(fp)
        if y is None:
            raise ValueError(f"--embeddings {str(args.embeddings)!r} has no labels; selection scores need "
                             "labelled images.")
        if y.dtype.kind not in "iu":  # class names: matched to the bank's by name, as indices into it
            bank = match_classes(bank, sorted(set(y.tolist())), args.class_map)
            y = np.asarray([bank.classes.index(c) for c in y.tolist()])
    out, info = select_concepts(bank, X, y, n_per_class=args.per_class, n_total=args.total,
                                score=args.score, coverage=args.coverage,
                                discriminability_weight=args.weights[0],
                                coverage_weight=args.weights[1])
    out.save(args.out)
    print(f"Selected {len(out)} of {len(bank)} concepts over {len(info['per_class'])} classes")
    return 0


def _show(args) -> int:
    from cbm.bank import ConceptBank

    bank = ConceptBank.load(args.bank)
    print(repr(bank))
    rows = []
    for j in range(min(len(bank), args.limit)):
        p = bank.provenance[j]
        where = p.summary()
        if p.source == "textbook" and p.detail.get("citations"):
            where += f" [{p.detail['citations'][0]['passage_id']}]"
        classes = "" if bank.prior is None else ",".join(
            f"{bank.classes[k]}:{bank.prior[k, j]:+.0f}" for k in np.flatnonzero(bank.prior[:, j]))
        rows.append((bank.names[j], p.source, p.model or "", str(where), classes))
    head = ("concept", "source", "model", "from", "prior")
    widths = [min(40, max(len(h), *(len(r[i]) for r in rows))) if rows else len(h)
              for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}.{w}}}" for w in widths)
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    if len(bank) > args.limit:
        print(f"... {len(bank) - args.limit} more (use --limit)", file=sys.stderr)
    return 0

