"""Textbook concepts without an LLM: cited keyphrases of the passages retrieved per class."""

import subprocess
import sys

import numpy as np
import pytest

from cbm.concepts import concept_overlap, extract_textbook_concepts
from cbm.concepts.textbook import Passage
from cbm.demo.garments import CLASSES
from cbm.demo.text_methods import TEXTBOOK_DIR as TEXTBOOK

# the demo's first hand-written garment list (21 concepts), the reference for overlap
HAND_LIST = ["sleeves", "long sleeves", "short sleeves", "collar", "buttons", "zipper", "hood",
             "two separate legs", "waistband", "skirt below the waist", "upper-body garment",
             "knit texture", "straps", "open toe", "heel", "laces", "sole", "footwear",
             "ankle-high shaft", "handle", "rectangular body"]

CORPUS = [
    Passage("birds.md", "birds.md#0", "A heron has long legs and a long neck. The heron wades in "
            "shallow water and spears fish with a sharp bill."),
    Passage("birds.md", "birds.md#1", "A sparrow is a small brown bird with a short conical beak. "
            "The sparrow eats seeds and hops on the ground."),
    Passage("other.md", "other.md#0", "Feathers cover the body of every bird."),
]


@pytest.fixture(scope="module")
def garment_bank():
    return extract_textbook_concepts(CLASSES, TEXTBOOK, per_class=6)


def test_every_class_gets_concepts_that_cite_the_passages_they_come_from(garment_bank):
    bank = garment_bank
    assert bank.classes == CLASSES and bank.prior.shape == (len(CLASSES), len(bank))
    for cls in CLASSES:
        assert any(cls in p.detail["classes"] for p in bank.provenance), cls
    for name, prov in zip(bank.names, bank.provenance, strict=True):
        assert prov.source == "textbook" and prov.detail["extractor"] == "keyphrase"
        assert prov.detail["citations"], name
        for cite in prov.detail["citations"]:
            assert name in cite["text"].lower() and (TEXTBOOK / cite["doc"]).is_file()


def test_no_concept_names_a_class(garment_bank):
    class_words = {w.lower() for c in CLASSES for w in c.replace("/", " ").split()}
    for name in garment_bank.names:
        assert not set(name.split()) & class_words, name


def test_prior_says_yes_where_the_class_passages_contain_the_phrase(garment_bank):
    bank = garment_bank
    assert set(np.unique(bank.prior)) <= {-1.0, 0.0, 1.0}
    for j, prov in enumerate(bank.provenance):
        for cls in prov.detail["classes"]:
            assert bank.prior[bank.class_index(cls), j] == 1.0


def test_small_corpus_gives_specific_phrases_per_class():
    bank = extract_textbook_concepts(["heron", "sparrow"], CORPUS, per_class=4)
    by_class = {c: [n for n, p in zip(bank.names, bank.provenance, strict=True)
                    if c in p.detail["classes"]] for c in ("heron", "sparrow")}
    assert "long legs" in by_class["heron"] and "short conical beak" in by_class["sparrow"]
    assert bank.prior[bank.class_index("sparrow"), bank.index("long legs")] == -1.0


def test_a_corpus_that_never_mentions_the_classes_is_refused():
    with pytest.raises(ValueError, match="no passage"):
        extract_textbook_concepts(["zebra"], CORPUS)


def test_overlap_counts_reference_concepts_matched_by_a_shared_word():
    out = concept_overlap(["long legs", "sharp bill"], ["legs", "wings", "bill shape"])
    assert out["recall"] == pytest.approx(2 / 3) and out["precision"] == 1.0


def test_with_minilm_most_hand_written_garment_concepts_are_found():
    """KeyBERT relevance over the bundled MiniLM: the measured overlap with the demo's hand list."""
    from cbm.encoders import create_encoder

    enc = create_encoder("minilm")
    bank = extract_textbook_concepts(CLASSES, TEXTBOOK, per_class=6, encoder=enc)
    overlap = concept_overlap(bank.names, HAND_LIST, encoder=enc)
    assert overlap["recall"] >= 0.6, overlap


def test_cli_generates_a_textbook_bank_without_an_llm(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES))
    out = tmp_path / "bank"
    proc = subprocess.run([sys.executable, "-m", "cbm", "concepts", "generate", "--source", "textbook",
                           "--input", str(TEXTBOOK), "--classes", str(classes), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no LLM" in proc.stdout and (out / "bank.json").is_file()
