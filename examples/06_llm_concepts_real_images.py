"""From an LLM's concepts to a trained LaBo model on real images, fully offline but for the LLM.

What this teaches
-----------------
1. Concepts from an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) with
   ``generate_llm_concepts``; with no endpoint configured, the same steps run on concepts read
   from the demo's offline garment textbook by ``extract_textbook_concepts`` (no LLM at all).
2. Real images (Fashion-MNIST, Debian's package) embedded by the offline MobileNetV2, and the
   text-aligned stand-in for CLIP (``fit_text_alignment``): a linear map into MiniLM's text space
   fitted on captions made of class names and their concepts, so text-scored methods can run.
   It is not CLIP: it knows only what its captions said.
3. LaBo's selection and head on the projected embeddings, and the concepts it leans on.

    python examples/06_llm_concepts_real_images.py --quick
    CBM_LLM_BASE_URL=http://localhost:8000/v1 python examples/06_llm_concepts_real_images.py --llm-model llama3
"""

from __future__ import annotations

import argparse
import os

from cbm import create_encoder, create_model
from cbm.concepts import (
    LLMClient,
    embed_bank,
    extract_textbook_concepts,
    generate_llm_concepts,
    select_concepts,
)
from cbm.demo import CLASSES
from cbm.demo.pipeline import DemoConfig, build_splits, embed_splits, quick_config
from cbm.demo.text_methods import TEXTBOOK_DIR
from cbm.encoders.aligned import class_captions, fit_text_alignment
from cbm.explain import top_concepts


def concept_bank(args: argparse.Namespace):
    """LLM concepts when an endpoint is configured, else keyphrases of the offline textbook."""
    if args.llm_model is None and not os.environ.get("CBM_LLM_BASE_URL"):
        print("no LLM endpoint configured (CBM_LLM_BASE_URL or --llm-model): concepts come from "
              "the demo's garment textbook by keyphrase extraction instead")
        return extract_textbook_concepts(CLASSES, TEXTBOOK_DIR, per_class=6)
    client = LLMClient(args.llm_model or "gpt-4o-mini", base_url=args.base_url)
    bank = generate_llm_concepts(CLASSES, client, family="labo")
    print(f"LLM wrote {len(bank)} concepts; usage {client.usage.as_dict()}")
    return bank


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1,600 images at 64 px (seconds)")
    p.add_argument("--llm-model", help="chat model (endpoint: --base-url or CBM_LLM_BASE_URL)")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint")
    p.add_argument("--per-class", type=int, default=4, help="concepts LaBo keeps per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    cfg = quick_config(seed=args.seed) if args.quick else DemoConfig(seed=args.seed)
    splits = build_splits(cfg)
    X, image_encoder, _ = embed_splits(splits, cfg, progress=False)
    bank = concept_bank(args)

    minilm = create_encoder("minilm")
    captions = class_captions(CLASSES, bank)
    alignment = fit_text_alignment(
        X["train"], [captions[c] for c in splits["train"].y], minilm,
        image_encoder={"name": "mobilenet_v2", "image_size": cfg.image_size},
        image_fingerprint=image_encoder.fingerprint, random_state=args.seed)
    Z = {s: alignment.project(X[s]) for s in ("train", "val", "test")}
    y = {s: splits[s].y for s in ("train", "val", "test")}
    print(f"stand-in fitted on {len(y['train'])} images and {alignment.info['n_captions']} captions")

    concepts = embed_bank(bank, minilm)
    selected, _ = select_concepts(concepts, Z["train"], y["train"], n_per_class=args.per_class)
    model = create_model("labo", concepts=selected, max_epochs=100 if args.quick else 300,
                         random_state=args.seed)
    model.fit(Z["train"], y["train"], X_val=Z["val"], y_val=y["val"])
    print(f"LaBo on real images: {len(selected)} concepts, "
          f"test accuracy {model.score(Z['test'], y['test']):.3f} (chance {1 / len(CLASSES):.3f})")
    top = top_concepts(model, n=2)
    for cls, rows in top[top["sign"] == "positive"].groupby("class", sort=False):
        print(f"  {cls}: " + ", ".join(rows["concept"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
