"""Label-free CBM filters: each step removes what it should, and logs why."""

import numpy as np
import pytest

from cbm.bank import ConceptBank
from cbm.concepts import filter_concepts, load_concepts, read_lines


def _steps(log):
    return {e["concept"]: e["step"] for e in log}


def test_each_step_removes_with_a_reason(text_encoder):
    bank = ConceptBank(["a very long description of a striped tail", "a cat",
                        "striped tail", "Striped tail", "whiskers"], classes=None)
    out, log = filter_concepts(bank, ["cat", "dog"], text_encoder, activation_cutoff=None,
                               class_similarity=0.85, duplicate_similarity=0.9)
    steps = _steps(log)
    assert steps["a very long description of a striped tail"] == "length"
    assert steps["a cat"] == "class_name"
    assert sum(n in out.names for n in ("striped tail", "Striped tail")) == 1
    assert "whiskers" in out.names
    assert out.metadata["filter_log"]["removed"] == log
    assert all(e["reason"] for e in log)


def test_similar_to_class_uses_encoder_similarity(text_encoder):
    bank = ConceptBank(["dog leash", "tabby cat fur"])
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    out, log = filter_concepts(bank, ["cat"], text_embeddings=emb,
                               class_embeddings=np.array([[0.1, 1.0]]), duplicate_similarity=None)
    assert out.names == ["dog leash"] and log[0]["step"] == "class_similarity"
    assert log[0]["value"] == pytest.approx(1 / np.sqrt(1.01))


def test_duplicate_keeps_the_more_general_concept():
    bank = ConceptBank(["fur", "orange fur", "stripes"])
    # "fur" is similar to both others (general); "orange fur" only to "fur"
    emb = np.array([[1.0, 0.3, 0.3], [1.0, 0.05, 0.0], [0.4, 0.0, 1.0]])
    out, log = filter_concepts(bank, [], text_embeddings=emb, duplicate_similarity=0.9)
    assert out.names == ["fur", "stripes"]
    assert log[0]["concept"] == "orange fur" and "'fur'" in log[0]["reason"]


def test_never_firing_concepts_are_removed_given_image_embeddings():
    rng = np.random.default_rng(0)
    images = np.abs(rng.normal(size=(50, 8))) * np.r_[np.ones(4), np.zeros(4)]
    vecs = np.eye(8)[[0, 1, 6]]  # axes 0,1 present in images; axis 6 never
    bank = ConceptBank(["a", "b", "ghost"], vectors=vecs)
    out, log = filter_concepts(bank, [], image_embeddings=images)
    assert out.names == ["a", "b"] and _steps(log) == {"ghost": "never_fires"}
    assert log[0]["value"] == pytest.approx(0.0, abs=1e-6)


def test_never_fires_needs_vectors():
    with pytest.raises(ValueError, match="concept vectors"):
        filter_concepts(ConceptBank(["a"]), [], image_embeddings=np.ones((3, 2)))


def test_real_cifar10_conceptnet_list(shared_data, text_encoder):
    root = shared_data / "concept-sets/sparsecbm"
    bank = load_concepts(root / "conceptnet_cifar10_filtered_new.txt")
    classes = read_lines(root / "cifar10_classes.txt")
    out, log = filter_concepts(bank, classes, text_encoder)
    assert len(out) + len(log) == len(bank)
    long = {t for t in bank.texts if len(t) > 30}
    assert long == {e["concept"] for e in log if e["step"] == "length"}
    kept = {t.lower() for t in out.texts}
    assert not kept & {c.lower() for c in classes}
    assert len({t.lower().strip() for t in out.texts}) == len(out)  # no case duplicates left
