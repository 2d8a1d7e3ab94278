"""`cbm demo --llm`: the garment bank regenerated through an OpenAI-compatible endpoint."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "concepts"))
from fake_llm import serve  # noqa: E402

from cbm.demo import ARTIFACT, CLASSES  # noqa: E402
from cbm.demo.pipeline import llm_concept_bank  # noqa: E402


def test_llm_bank_keeps_the_generating_class_as_prior_and_adds_the_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("CBM_LLM_API_KEY", "sk-test")
    with serve() as (url, fake):
        fake.responder = lambda prompt: json.dumps(
            ["laces", "rubber sole"] if "Sneaker" in prompt else ["a handle"] if "Bag" in prompt else ["fabric"])
        bank = llm_concept_bank("test-model", url, cache_dir=tmp_path)
    assert bank.classes == CLASSES and ARTIFACT in bank.names
    laces = bank.index("laces")
    assert bank.prior[CLASSES.index("Sneaker"), laces] == 1
    assert bank.prior[CLASSES.index("Bag"), laces] == -1  # LaBo's prior: not generated for Bag
    assert (bank.prior[:, bank.index(ARTIFACT)] == 0).all()
    assert {p.source for p in bank.provenance[:-1]} == {"llm"}
    assert list((tmp_path / "llm").rglob("*.json")), "answers are cached for offline reruns"
    assert np.isfinite(bank.prior).all()
