"""The synthetic concept world plants a known structure that the model tests rely on."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cbm.data import make_concept_world
from cbm.data.synthetic import ConceptWorld


def _scores(world, X):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return Xn @ world.bank.vectors.T


@pytest.fixture(scope="module")
def world() -> ConceptWorld:
    return make_concept_world(random_state=0)


def test_shapes_and_splits(world):
    M, d = world.bank.vectors.shape
    assert M == 20 and len(world.bank) == 20
    assert set(world.splits) == {"train", "val", "test", "shifted"}
    for s in world.splits.values():
        assert s.X.shape == (len(s), d) and s.concepts.shape == (len(s), M)
        assert s.X.dtype == np.float32 and s.y.dtype == np.int64
    assert (world["train"].domains == "source").all() and (world["shifted"].domains == "shifted").all()
    assert world.class_embeddings.shape == (5, d)


def test_class_concepts_are_sparse_unique_and_match_prior(world):
    G = world.class_concepts
    assert (G.sum(1) == 3).all()
    assert len({tuple(r) for r in G}) == len(G)
    prior = world.bank.prior
    assert set(np.unique(prior)) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(prior > 0, G > 0)
    assert (prior[:, world.spurious_index] == 0).all()


def test_same_seed_same_world_and_other_seed_differs():
    a, b = make_concept_world(random_state=3), make_concept_world(random_state=3)
    c = make_concept_world(random_state=4)
    np.testing.assert_array_equal(a["train"].X, b["train"].X)
    assert not np.allclose(a["train"].X, c["train"].X)


def test_samples_show_their_class_concepts(world):
    s = world["train"]
    on_class = s.concepts[world.class_concepts[s.y] > 0].mean()
    off_class = s.concepts[:, :-1][world.class_concepts[s.y][:, :-1] == 0].mean()
    assert on_class > 0.65 and off_class < 0.15


def test_concept_scores_detect_present_concepts(world):
    s = world["test"]
    A = _scores(world, s.X)
    for j in range(len(world.bank)):
        present, absent = A[s.concepts[:, j] == 1, j], A[s.concepts[:, j] == 0, j]
        assert present.mean() > absent.mean() + 0.1, world.bank.names[j]


def test_spurious_concept_follows_its_class_in_source_only(world):
    j, k = world.spurious_index, world.spurious_class
    tr, sh = world["train"], world["shifted"]
    assert tr.concepts[tr.y == k, j].mean() > 0.75 and tr.concepts[tr.y != k, j].mean() < 0.15
    assert sh.concepts[sh.y == k, j].sum() == 0 and sh.concepts[sh.y != k, j].mean() > 0.4


def test_pruning_the_spurious_weight_raises_shifted_accuracy(world):
    A = {n: _scores(world, world[n].X) for n in ("train", "test", "shifted")}
    clf = LogisticRegression(max_iter=3000).fit(A["train"], world["train"].y)
    j, k = world.spurious_index, world.spurious_class
    assert clf.coef_[k, j] == clf.coef_[:, j].max() > 0
    before = clf.score(A["shifted"], world["shifted"].y)
    clf.coef_[k, j] = 0.0
    after = clf.score(A["shifted"], world["shifted"].y)
    assert after > before + 0.03
    assert clf.score(A["test"], world["test"].y) > 0.75


def test_no_spurious_world():
    w = make_concept_world(spurious=False, n_concepts=12, random_state=1)
    assert w.spurious_index is None and len(w.bank) == 12
    assert "water background" not in w.bank.names


def test_npz_round_trip(tmp_path, world):
    path = world.save_npz(tmp_path / "world.npz")
    with np.load(path) as z:
        np.testing.assert_array_equal(z["X_shifted"], world["shifted"].X)
        assert list(z["class_names"]) == world.class_names


def test_custom_text_encoder_is_used():
    class Fake:
        fingerprint = "fake-8"

        def encode_text(self, texts):
            rng = np.random.default_rng(len(texts))
            return rng.standard_normal((len(texts), 8))

    w = make_concept_world(n_classes=3, n_concepts=9, n_samples=60, text_encoder=Fake())
    assert w.bank.vectors.shape == (9, 8) and w.encoder_fingerprint == "fake-8"
    assert w.bank.encoder_fingerprint == "fake-8"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_classes=1), "n_classes >= 2"),
        (dict(concepts_per_class=25), "concepts_per_class must be in"),
        (dict(spurious_class=9), "spurious_class must be"),
        (dict(n_samples=4), "n_samples must be at least"),
    ],
)
def test_bad_arguments_have_clear_messages(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_concept_world(**kwargs)


@pytest.mark.slow
def test_real_minilm_text_embeddings():
    w = make_concept_world(n_classes=4, n_concepts=10, n_samples=160, text_encoder="minilm")
    assert w.bank.vectors.shape == (10, 384) and w.encoder_fingerprint.startswith("minilm")
    np.testing.assert_allclose(np.linalg.norm(w.bank.vectors, axis=1), 1, atol=1e-4)
    s = w["train"]
    A = _scores(w, s.X)
    hits = [A[s.concepts[:, j] == 1, j].mean() > A[s.concepts[:, j] == 0, j].mean() for j in range(10)]
    assert all(hits)


def test_label_names_give_labels_named_like_the_banks_prior():
    from cbm.models import create_model

    world = make_concept_world(label_names=True, random_state=0)
    assert set(world["train"].y.tolist()) == set(world.bank.classes)
    model = create_model("linear-probe").fit(world["train"].X, world["train"].y)
    assert sorted(model.class_names_) == sorted(world.bank.classes)
