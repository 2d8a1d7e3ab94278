"""LaBo: concepts written by a language model, selected per class, and a softmax concept head.

What this teaches
-----------------
1. Where LaBo's concepts come from: ``cbm.concepts.generate_llm_concepts`` asks an LLM, per class,
   for visual descriptions; the bank remembers which class each concept was written for (prior).
2. How the concepts meet the images: their texts are embedded by the text tower of the same CLIP
   model that embeds the images (``create_encoder("openclip:ViT-B-32", pretrained=...)``).
3. LaBo's submodular selection (``select_concepts``) keeps, per class, concepts that are
   discriminative and together cover the class; then ``LaBo`` learns a class-concept association.

Offline, without CLIP weights or an LLM endpoint, the same steps run on the controlled concept
world (``cbm.data.make_concept_world``), whose concepts were "written" per class with a known
answer, and the script says what it would use instead.

    python examples/01_labo_llm_concepts.py --quick
    CBM_LLM_BASE_URL=http://localhost:8000/v1 python examples/01_labo_llm_concepts.py --llm-model llama3
    python examples/01_labo_llm_concepts.py --clip-checkpoint vit_b_32.pt --images birds/ --llm-model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from cbm import create_encoder, create_model, make_concept_world
from cbm.concepts import (
    LLMClient,
    embed_bank,
    generate_llm_concepts,
    load_concepts,
    select_concepts,
)
from cbm.explain import top_concepts
from cbm.metrics import accuracy


def llm_client(args: argparse.Namespace) -> LLMClient | None:
    """An LLM client when an endpoint is configured (``--llm-model`` or ``CBM_LLM_BASE_URL``)."""
    if args.llm_model is None and not os.environ.get("CBM_LLM_BASE_URL"):
        source = f"the concepts in {args.concepts}" if args.concepts else "the concept texts from the world"
        print(f"no LLM endpoint configured (CBM_LLM_BASE_URL or --llm-model); using {source} instead "
              "of `generate_llm_concepts`")
        return None
    model = args.llm_model or "gpt-4o-mini"
    print(f"LLM: {model} at {os.environ.get('CBM_LLM_BASE_URL', 'the OpenAI API')}")
    return LLMClient(model)


def image_data(args: argparse.Namespace):
    """(splits, class names, CLIP encoder or None): real images with CLIP, else the concept world."""
    if args.clip_checkpoint is None or args.images is None:
        print("no --clip-checkpoint/--images given: using the controlled concept world; with open_clip "
              f"weights this would embed images with {args.clip_arch}")
        # Concept vectors live in the world's embedding space; with an LLM they must be embedded by a
        # real text encoder, so the world is then built on the bundled MiniLM text space.
        world = make_concept_world(n_classes=5 if args.quick else 10, n_concepts=30 if args.quick else 60,
                                   concepts_per_class=6, n_samples=400 if args.quick else 2000,
                                   spurious=False, random_state=args.seed,
                                   text_encoder="minilm" if args.llm else None)
        splits = {k: (world[k].X, world[k].y) for k in ("train", "val", "test")}
        return splits, world.class_names, None, world.bank
    from cbm import EmbeddingStore
    from cbm.data import image_folder, make_splits

    encoder = create_encoder(f"openclip:{args.clip_arch}", pretrained=args.clip_checkpoint)
    ds = image_folder(args.images)
    cache = EmbeddingStore().get_or_compute(encoder, ds)
    X, y = cache.as_array(), np.asarray(cache.labels)
    parts = make_splits(len(y), (0.7, 0.1, 0.2), seed=args.seed, stratify=y)
    return {k: (X[i], y[i]) for k, i in parts.items()}, list(ds.classes), encoder, None


def candidate_concepts(args, class_names, encoder, world_bank):
    """The candidate bank with text-embedding vectors in the image space."""
    if args.llm is not None:
        bank = generate_llm_concepts(class_names, args.llm, family="labo")
        print(f"LLM wrote {len(bank)} candidate concepts; usage {args.llm.usage.as_dict()}")
    elif args.concepts is not None:
        bank = load_concepts(args.concepts)  # LaBo's {class: [concepts]} JSON gives the class prior
    elif world_bank is not None:
        return world_bank
    else:
        raise SystemExit("With --images, pass --llm-model (an endpoint) or --concepts FILE "
                         "(LaBo-style JSON {class: [concepts]}) to have concepts to select from.")
    text_encoder = encoder if encoder is not None else create_encoder("minilm")
    return embed_bank(bank, text_encoder, template="a photo of a bird with {}" if encoder is None
                      else "a photo of {}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small world, short training (seconds)")
    p.add_argument("--llm-model", help="chat model for concept generation (endpoint: CBM_LLM_BASE_URL)")
    p.add_argument("--clip-checkpoint", help="open_clip weights: a local checkpoint path or a cached tag")
    p.add_argument("--clip-arch", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--images", metavar="DIR", help="image folder <class>/<image> to embed with CLIP")
    p.add_argument("--concepts", metavar="FILE", help="LaBo-style concept JSON {class: [concepts]} instead of an LLM")
    p.add_argument("--per-class", type=int, default=4, help="concepts LaBo keeps per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.llm = llm_client(args)

    splits, class_names, encoder, world_bank = image_data(args)
    bank = candidate_concepts(args, class_names, encoder, world_bank)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = splits["train"], splits["val"], splits["test"]

    selected, info = select_concepts(bank, Xtr, ytr, n_per_class=args.per_class)
    print(f"LaBo selection kept {len(selected)} of {len(bank)} candidate concepts")
    names = np.asarray(class_names)  # fit on class names so the head's rows are named
    model = create_model("labo", concepts=selected, max_epochs=60 if args.quick else 300,
                         random_state=args.seed, device="auto")
    model.fit(Xtr, names[ytr], X_val=Xva, y_val=names[yva])

    print(f"test accuracy: {accuracy(names[yte], model.predict(Xte)):.3f}")
    top = top_concepts(model, n=3)
    for cls, rows in top[top["sign"] == "positive"].groupby("class", sort=False):
        print(f"  {cls}: " + ", ".join(f"{c} ({w:.2f})" for c, w in zip(rows["concept"], rows["weight"], strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
