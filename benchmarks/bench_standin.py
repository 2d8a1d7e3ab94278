"""The offline text-aligned stand-in for CLIP and textbook concepts without an LLM, on the demo data.

Measures, in one run:

* the stand-in's zero-shot class accuracy on the demo's test split (class-name prompts), beside
  chance and the linear probe on the same MobileNetV2 features;
* LaBo through the stand-in with concepts extracted offline from the demo's garment textbook
  (``extract_textbook_concepts``, no LLM) against LaBo with the hand-written garment bank
  (goal: >= 90% of its accuracy);
* keyphrase extraction time on a 200-passage corpus (goal: < 10 s on 2 cores): KnoBo's published
  X-ray concept questions from ``../shared/data`` grouped into passages when present, else the demo
  textbook repeated.

Usage: ``python benchmarks/bench_standin.py [--quick]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _harness import write_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "concept-sets" / "knobo"


def corpus_200() -> tuple[list, str]:
    """200 passages of real concept text (KnoBo's X-ray questions) or the demo textbook repeated."""
    from cbm.concepts.textbook import Passage, load_corpus
    from cbm.demo.text_methods import TEXTBOOK_DIR

    files = sorted(SHARED.glob("xray_*.txt"))
    lines = [ln.strip() for f in files for ln in f.read_text().splitlines() if ln.strip()]
    if len(lines) >= 1000:
        return [Passage("knobo-xray", f"knobo-xray#{i}", " ".join(lines[5 * i:5 * i + 5]))
                for i in range(200)], "KnoBo's X-ray concept questions (5 per passage)"
    base = load_corpus(TEXTBOOK_DIR)
    return [Passage(p.doc, f"{p.passage_id}/{i}", p.text) for i in range(20) for p in base][:200], \
        "the demo textbook repeated"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the demo's quick configuration")
    args = p.parse_args()

    from cbm.concepts import embed_bank, extract_textbook_concepts
    from cbm.demo.garments import CLASSES, garment_concept_bank
    from cbm.demo.pipeline import DemoConfig, build_splits, embed_splits, quick_config
    from cbm.demo.text_methods import TEMPLATE, TEXTBOOK_DIR, fit_standin
    from cbm.encoders import create_encoder
    from cbm.models import create_model

    cfg = quick_config() if args.quick else DemoConfig()
    splits = build_splits(cfg)
    X, image_encoder, _ = embed_splits(splits, cfg, progress=False)
    minilm = create_encoder("minilm")
    hand = garment_concept_bank(include_artifact=False)
    t0 = time.perf_counter()
    alignment = fit_standin(X["train"], splits["train"].y, hand, CLASSES,
                            {"name": "mobilenet_v2", "image_size": cfg.image_size},
                            image_encoder.fingerprint, seed=cfg.seed, text_encoder=minilm)
    fit_s = time.perf_counter() - t0
    Z = {s: alignment.project(X[s]) for s in ("train", "val", "test", "shifted")}
    y = {s: np.asarray(splits[s].y) for s in Z}
    prompts = minilm.encode_text([TEMPLATE.format(cls=c) for c in CLASSES])
    zero_shot = float((np.asarray(CLASSES)[(Z["test"] @ prompts.T).argmax(1)] == y["test"]).mean())
    probe = create_model("linear-probe", random_state=cfg.seed).fit(X["train"], y["train"])

    t0 = time.perf_counter()
    textbook = extract_textbook_concepts(CLASSES, TEXTBOOK_DIR, per_class=6, encoder=minilm)
    extract_demo_s = time.perf_counter() - t0
    labo = {}
    for name, bank in (("hand-written garment bank", hand), ("textbook keyphrases (no LLM)", textbook)):
        model = create_model("labo", concepts=embed_bank(bank, minilm), random_state=cfg.seed)
        model.fit(Z["train"], y["train"], X_val=Z["val"], y_val=y["val"])
        labo[name] = {"n_concepts": len(bank), "test": float(model.score(Z["test"], y["test"])),
                      "shifted": float(model.score(Z["shifted"], y["shifted"]))}
    ratio = labo["textbook keyphrases (no LLM)"]["test"] / labo["hand-written garment bank"]["test"]

    passages, source = corpus_200()
    classes = ["pneumonia", "pleural effusion", "cardiomegaly", "pneumothorax", "atelectasis"] \
        if source.startswith("KnoBo") else CLASSES
    timings = {}
    for label, enc in (("bm25 + tf-idf", None), ("bm25 + MiniLM (KeyBERT)", minilm)):
        t0 = time.perf_counter()
        bank = extract_textbook_concepts(classes, passages, encoder=enc, per_class=8)
        timings[label] = {"seconds": time.perf_counter() - t0, "n_concepts": len(bank)}

    result = {
        "config": cfg.describe(),
        "standin": {"fit_s": fit_s, **alignment.info},
        "zero_shot_test_accuracy": zero_shot, "chance": 1 / len(CLASSES),
        "linear_probe_test_accuracy": float(probe.score(X["test"], y["test"])),
        "labo": labo, "labo_textbook_over_hand": ratio, "goal_labo_ratio": 0.9,
        "extraction_demo_textbook_s": extract_demo_s,
        "extraction_200_passages": {"corpus": source, "n_passages": len(passages),
                                    "classes": classes, "timings": timings, "goal_s": 10.0},
    }
    print(f"stand-in zero-shot test accuracy {zero_shot:.3f} (chance {1 / len(CLASSES):.3f}; "
          f"linear probe {result['linear_probe_test_accuracy']:.3f})")
    for name, r in labo.items():
        print(f"LaBo with {name} ({r['n_concepts']} concepts): test {r['test']:.3f}, shifted {r['shifted']:.3f}")
    print(f"textbook / hand ratio {ratio:.3f} (goal >= 0.9)")
    for label, t in timings.items():
        print(f"extraction on {len(passages)} passages ({source}), {label}: {t['seconds']:.2f} s, "
              f"{t['n_concepts']} concepts (goal < 10 s)")
    print(write_result("standin", result, quick=args.quick))


if __name__ == "__main__":
    main()
