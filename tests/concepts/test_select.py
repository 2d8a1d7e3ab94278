"""LaBo submodular selection: exact greedy, both scores, both coverage modes, budgets."""

import numpy as np
import pytest
import torch

from cbm.bank import ConceptBank
from cbm.concepts import discriminability, greedy_select, load_concepts, read_lines, select_concepts
from cbm.concepts.select import class_similarity


def _objective(W, mod, S):
    W = np.asarray(W)
    return float(np.sum(mod[S]) + np.clip(W[S], 0, None).max(0).sum()) if S else 0.0


@pytest.mark.parametrize("algorithm", ["incremental", "lazy"])
def test_fast_greedy_equals_naive_greedy_and_objective(algorithm):
    rng = np.random.default_rng(1)
    W, mod = np.abs(rng.normal(size=(300, 20))), rng.random(300)
    naive, g1 = greedy_select(W, 25, mod, algorithm="naive")
    fast, g2 = greedy_select(W, 25, mod, algorithm=algorithm, batch=2)
    assert naive == fast
    np.testing.assert_allclose(g1, g2)
    assert sum(g1) == pytest.approx(_objective(W, mod, naive))


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="incremental"):
        greedy_select(np.ones((3, 2)), 1, algorithm="fastest")


def test_greedy_step_is_the_best_single_addition():
    rng = np.random.default_rng(2)
    W, mod = rng.normal(size=(40, 6)), rng.random(40) * 0.1
    picks, _ = greedy_select(W, 4, mod)
    for t in range(4):
        S = picks[:t]
        best = max((i for i in range(40) if i not in S), key=lambda i: _objective(W, mod, S + [i]))
        assert picks[t] == best


def test_coverage_picks_one_per_cluster():
    rng = np.random.default_rng(3)
    centres = np.eye(3) * 5
    W = np.repeat(centres, 10, axis=0) + rng.random((30, 3)) * 0.01
    picks, _ = greedy_select(W, 3)
    assert sorted(p // 10 for p in picks) == [0, 1, 2]


@pytest.mark.parametrize("score", ["kl", "negentropy"])
def test_discriminability_prefers_class_specific_concepts(score):
    sim = torch.tensor([[0.9, 0.1, 0.1], [0.3, 0.3, 0.3], [0.2, 0.6, 0.2]], dtype=torch.float64)
    d = discriminability(sim, score)
    assert d[0] > d[2] > d[1]


def test_class_similarity_is_mean_cosine_per_class():
    images = np.array([[1.0, 0], [2.0, 0], [0, 1.0]])
    sim = class_similarity(np.array([[1.0, 0], [1.0, 1.0]]), images, [0, 0, 1])
    np.testing.assert_allclose(sim.numpy(), [[1, 0], [2 ** -0.5, 2 ** -0.5]])


def _bank_two_classes():
    # class 0 candidates 0-3, class 1 candidates 4-7; concept 0 and 4 are the discriminative ones
    vecs = np.array([[1, 0, 0], [.5, .5, .5], [.5, .5, .6], [.4, .6, .5],
                     [0, 1, 0], [.5, .5, .5], [.6, .5, .5], [.5, .4, .6]], np.float32) + 0.05
    prior = np.zeros((2, 8))
    prior[0, :4] = prior[1, 4:] = 1
    return ConceptBank([f"c{i}" for i in range(8)], vectors=vecs, classes=["a", "b"], prior=prior)


@pytest.mark.parametrize("coverage", ["features", "cosine"])
@pytest.mark.parametrize("score", ["kl", "negentropy"])
def test_select_concepts_takes_discriminative_concepts_per_class(score, coverage):
    bank = _bank_two_classes()
    images = np.array([[1, 0, 0], [1, .1, 0], [0, 1, 0], [.1, 1, 0]], np.float32)
    out, info = select_concepts(bank, images, [0, 0, 1, 1], n_per_class=1, score=score,
                                coverage=coverage, discriminability_weight=1e7 if score == "kl" else 100)
    assert info["per_class"] == {"a": ["c0"], "b": ["c4"]}
    assert out.names == ["c0", "c4"] and out.metadata["selection"]["score"] == score


def test_labels_may_be_class_names_matched_to_the_bank_by_name():
    bank = _bank_two_classes()
    images = np.array([[1, 0, 0], [1, .1, 0], [0, 1, 0], [.1, 1, 0]], np.float32)
    _, by_index = select_concepts(bank, images, [0, 0, 1, 1], n_per_class=1)
    _, by_name = select_concepts(bank, images, ["a", "a", "b", "b"], n_per_class=1)
    assert by_name["per_class"] == by_index["per_class"] == {"a": ["c0"], "b": ["c4"]}
    with pytest.raises(ValueError, match=r"does not have: \['z'\]"):
        select_concepts(bank, images, ["a", "a", "b", "z"], n_per_class=1)


def test_total_budget_and_required_inputs():
    bank = _bank_two_classes()
    out, _ = select_concepts(bank, n_total=4)
    assert len(out) == 4 and (out.prior.sum(1) == 2).all()
    with pytest.raises(ValueError, match="exactly one budget"):
        select_concepts(bank)
    with pytest.raises(ValueError, match="concept vectors"):
        select_concepts(ConceptBank(["x"]), n_total=1)


def test_select_on_real_cub_list(shared_data, text_encoder):
    root = shared_data / "concept-sets/sparsecbm"
    bank = load_concepts(root / "cub_filtered.txt")
    classes = read_lines(root / "cub_classes.txt")[:20]
    vecs = text_encoder.encode_text(bank.texts)
    owner = np.arange(len(bank)) % len(classes)
    bank = bank.with_vectors(vecs).with_prior(classes, np.eye(len(classes))[:, owner])
    rng = np.random.default_rng(0)
    images, labels = np.abs(rng.normal(size=(60, vecs.shape[1]))), np.arange(60) % 20
    out, info = select_concepts(bank, images, labels, n_total=60)
    assert len(out) == 60 and all(len(v) == 3 for v in info["per_class"].values())
    for c, names in info["per_class"].items():  # picks stay within the class's candidates
        k = classes.index(c)
        assert all(owner[bank.index(n)] == k for n in names)
