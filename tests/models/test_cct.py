"""Concept-Centric Transformer: shapes, the released losses against independent formulas, a forward
pass against an independent implementation, determinism, pruning, spatial maps and save/load."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from world_models import one_torch_thread

from cbm.bank import ConceptBank
from cbm.concept_maps import concept_map, overlay, patch_mask, pointing_game, region_mass
from cbm.exceptions import NotFittedError
from cbm.io import load_model, save_model
from cbm.models import create_model
from cbm.models.cct import (
    CCTNet,
    ConceptCentricTransformer,
    explanation_cost,
    presence_cost,
    sparsity_cost,
    spatial_explanation_cost,
)

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"dim": 16, "max_epochs": 25, "batch_size": 32, "device": "cpu", "lr": 3e-3}


def tag_world(n=160, grid=3, d=8, seed=0, at=0, position=0.0):
    """Tokens (n, grid*grid, d): a 'tag' direction on patch ``at`` of most class 1 and a few class 0
    images, class evidence on every patch. Image-level concepts: class 0, class 1, tag.

    ``position`` scales a fixed per-patch offset: each token also says where it is (as a CNN's
    padding or a ViT's position embedding make it)."""
    rng = np.random.default_rng(seed)
    T = grid * grid
    X = rng.normal(0, 0.3, size=(n, T, d)).astype(np.float32)
    X += position * np.random.default_rng(99).normal(size=(T, d)).astype(np.float32)
    y = rng.integers(0, 2, n)
    tag = rng.random(n) < np.where(y == 1, 0.8, 0.2)
    X[tag, at, 0] += 3.0
    X[:, :, 1] += np.where(y == 0, 1.0, -1.0)[:, None]
    C = np.stack([y == 0, y == 1, tag], 1).astype(np.float32)
    return X, y, C, tag


@pytest.fixture(scope="module")
def bank():
    return ConceptBank(["class 0", "class 1", "tag"])


@pytest.fixture(scope="module")
def fitted(bank):
    X, y, C, tag = tag_world()
    with one_torch_thread():  # module fixtures run before the one_thread fixture
        model = ConceptCentricTransformer(concepts=bank, spatial_concepts=["tag"], **FAST)
        model.fit(X, y, concept_labels=C)
    return model, X, y, C, tag


# -- losses ------------------------------------------------------------------------------------
def test_explanation_cost_is_n_concepts_times_mse_to_normalised_targets():
    rng = np.random.default_rng(0)
    attn = rng.dirichlet(np.ones(4), size=5)
    targets = rng.integers(0, 2, size=(5, 4)).astype(float)
    targets[0] = [1, 1, 0, 0]
    targets[1] = np.nan          # unknown: ignored
    targets[2] = 0               # no concept present: ignored (0 / 0)
    rows = [i for i in range(5) if np.isfinite(targets[i]).all() and targets[i].sum() > 0]
    expected = 4 * np.mean([(attn[i] - targets[i] / targets[i].sum()) ** 2 for i in rows])
    got = explanation_cost(torch.tensor(attn), torch.tensor(targets))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_a_nan_anywhere_in_a_row_ignores_the_row_and_all_nan_costs_zero():
    attn = torch.full((2, 3), 1 / 3)
    t = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, 0.0]])
    assert float(explanation_cost(attn, t)) == pytest.approx(3 * float(((attn[1] - t[1]) ** 2).mean()))
    nan = torch.full((2, 3), float("nan"))
    cost = explanation_cost(attn.requires_grad_(), nan)
    assert float(cost.detach()) == 0.0
    cost.backward()  # a zero cost still has a graph


def test_spatial_cost_is_the_same_formula_per_patch_with_nan_patches_ignored():
    rng = np.random.default_rng(1)
    attn = rng.dirichlet(np.ones(3), size=(2, 4))                       # (N, T, M)
    targets = rng.integers(0, 2, size=(2, 4, 3)).astype(float)
    targets[..., 0] = 1
    targets[0, 2] = np.nan
    patches = [(i, t) for i in range(2) for t in range(4) if np.isfinite(targets[i, t]).all()]
    expected = 3 * np.mean([(attn[i, t] - targets[i, t] / targets[i, t].sum()) ** 2 for i, t in patches])
    assert float(spatial_explanation_cost(torch.tensor(attn), torch.tensor(targets))) == pytest.approx(expected)


def test_presence_cost_is_n_concepts_times_mse_of_peak_attention_to_labels():
    rng = np.random.default_rng(2)
    attn = rng.random((3, 5, 2))                                          # (N, T, M)
    labels = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 0.0]])
    known = [(i, m) for i in range(3) for m in range(2) if np.isfinite(labels[i, m])]
    expected = 2 * np.mean([(attn[i, :, m].max() - labels[i, m]) ** 2 for i, m in known])
    assert float(presence_cost(torch.tensor(attn), torch.tensor(labels))) == pytest.approx(expected)
    cost = presence_cost(torch.tensor(attn, requires_grad=True), torch.full((3, 2), float("nan")))
    assert float(cost.detach()) == 0.0


def test_sparsity_cost_is_the_mean_entropy_of_each_attention_given():
    a = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    s = torch.tensor([[[0.25, 0.75]]])
    ent = lambda p: float(np.mean(-p * np.log(p + 1e-8)))  # noqa: E731
    assert float(sparsity_cost(a, s)) == pytest.approx(ent(a.numpy()) + ent(s.numpy()), rel=1e-6)
    assert float(sparsity_cost(spatial_attn=s)) == pytest.approx(ent(s.numpy()), rel=1e-6)
    assert sparsity_cost() == 0.0


# -- the network ---------------------------------------------------------------------------------
def test_forward_pass_matches_an_independent_cross_attention_readout():
    torch.manual_seed(0)
    net = CCTNet(d_in=6, dim=8, n_concepts=3, n_classes=4, n_heads=2, n_iters=2, variant="cct").eval()
    x = torch.randn(5, 7, 6)
    out = net(x)
    r = net.global_readout
    with torch.no_grad():  # released CrossAttention: q from tokens, k/v from slots, proj, token mean
        h = net.embed(x)
        slots = net.slot_attention(h)
        q = r.q(h).view(5, 7, 2, 4).transpose(1, 2)
        k, v = r.kv(slots).view(5, 3, 2, 2, 4).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)                     # (B, H, T, dh)
        logits = r.proj(y.transpose(1, 2).reshape(5, 7, 8)).mean(1)
        attn = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1).mean(1)
    torch.testing.assert_close(out["logits"], logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["attn"], attn)
    torch.testing.assert_close(out["scores"], attn.mean(1))
    torch.testing.assert_close(out["contrib"].sum(1) + r.proj.bias, out["logits"])


def test_spatial_concepts_are_a_second_stream_of_learned_embeddings_with_a_background_key():
    torch.manual_seed(0)
    net = CCTNet(d_in=6, dim=8, n_concepts=3, n_classes=4, n_heads=1, n_iters=2, variant="cct",
                 spatial=[False, True, False]).eval()
    x = torch.randn(5, 7, 6)
    out = net(x)
    g, sp = net.global_readout, net.spatial_readout
    with torch.no_grad():
        h = net.embed(x)
        keys = torch.cat([net.concepts, sp.background])                 # same for every image
        a = torch.softmax(sp.q(h) @ sp.kv(keys)[:, :8].T / 8 ** 0.5, -1)  # (B, T, 2)
    torch.testing.assert_close(out["attn"][:, :, 1], a[..., 0])
    torch.testing.assert_close(out["background_attn"], a[..., 1])
    torch.testing.assert_close(out["attn"][:, :, [0, 2]].sum(-1), torch.ones(5, 7))
    torch.testing.assert_close(out["contrib"].sum(1) + out["background"] + g.proj.bias + sp.proj.bias,
                               out["logits"])
    labels = torch.tensor([[1.0, 0.0, 1.0]] * 5)  # global: normalised over concepts 0, 2; spatial: +background
    expected = explanation_cost(out["scores"][:, [0, 2]], labels[:, [0, 2]]) + explanation_cost(
        torch.stack([out["scores"][:, 1], 1 - out["scores"][:, 1]], 1), torch.tensor([[0.0, 1.0]] * 5))
    torch.testing.assert_close(net.explanation_costs(out, labels, None), expected)
    # multiple-instance: the spatial concept's peak attention over the patches against its 0/1 label
    expected_max = explanation_cost(out["scores"][:, [0, 2]], labels[:, [0, 2]]) + (
        out["attn"][:, :, 1].amax(1) ** 2).mean()
    torch.testing.assert_close(net.explanation_costs(out, labels, None, spatial_pooling="max"), expected_max)


def test_slot_attention_matches_locatello_with_per_concept_initial_slots():
    torch.manual_seed(0)
    net = CCTNet(d_in=4, dim=4, n_concepts=2, n_classes=2, n_heads=1, n_iters=3, variant="cct").eval()
    sa = net.slot_attention
    h = torch.randn(3, 5, 4)
    with torch.no_grad():
        x = sa.norm_inputs(h)
        k, v = sa.k(x) / 2.0, sa.v(x)
        s = sa.slots_init.expand(3, -1, -1)
        for _ in range(3):
            a = torch.softmax(torch.einsum("btd,bmd->btm", k, sa.q(sa.norm_slots(s))), dim=2) + 1e-8
            upd = torch.einsum("btm,btd->bmd", a / a.sum(1, keepdim=True), v)
            # GRU written out: r, z, n gates
            gi, gh = upd @ sa.gru.weight_ih.T + sa.gru.bias_ih, s @ sa.gru.weight_hh.T + sa.gru.bias_hh
            r = torch.sigmoid(gi[..., :4] + gh[..., :4])
            z = torch.sigmoid(gi[..., 4:8] + gh[..., 4:8])
            n = torch.tanh(gi[..., 8:] + r * gh[..., 8:])
            s = (1 - z) * n + z * s
        torch.testing.assert_close(sa(h), s, rtol=1e-5, atol=1e-6)


# -- the estimator -------------------------------------------------------------------------------
def test_shapes_of_scores_maps_and_contributions(fitted):
    model, X, y, _, _ = fitted
    n = len(X)
    A = model.transform(X)
    maps = model.concept_maps(X)
    assert A.shape == (n, 3) and maps.shape == (n, 3, 3, 3) and model.token_grid_ == (3, 3)
    np.testing.assert_allclose(maps[:, :2].sum(1), 1, rtol=1e-5)     # global: per token over concepts
    assert ((maps[:, 2] >= 0) & (maps[:, 2] <= 1)).all()               # spatial: beside the background
    np.testing.assert_allclose(maps.mean((2, 3)), A, rtol=1e-5, atol=1e-6)  # scores = token mean
    assert model.concept_contributions(X).shape == (n, 3, 2)
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1, rtol=1e-5)
    assert list(model.classes_) == [0, 1] and model.score(X, y) > 0.9


def test_tag_concept_attends_to_the_tag_patch_learned_from_image_labels_only(fitted):
    model, X, _, _, tag = fitted
    maps = concept_map(model, X)[:, model.concept_names_.index("tag")]
    region = np.zeros((3, 3), bool)
    region[0, 0] = True
    assert pointing_game(maps[tag], region) > 0.9
    assert region_mass(maps[tag], region).mean() > 1 / 9  # more than a uniform map


def test_max_pooling_finds_the_tag_where_it_never_was_in_training_despite_position_in_the_tokens(bank):
    X, y, C, _ = tag_world(position=0.5)                       # the tag only ever on patch 0
    moved, _, _, tagged = tag_world(seed=1, at=8, position=0.5)  # now on patch 8 (the other corner)
    model = ConceptCentricTransformer(concepts=bank, spatial_concepts=["tag"], spatial_pooling="max", **FAST)
    maps = model.fit(X, y, concept_labels=C).concept_maps(moved)[tagged, model.concept_names_.index("tag")]
    region = np.zeros((3, 3), bool)
    region[2, 2] = True
    assert pointing_game(maps, region) > 0.9


def test_explanations_add_up_through_the_hybrid_residual(fitted):
    from cbm.explain import explain

    model, X, _, _, _ = fitted
    e = explain(model, X[:5])
    np.testing.assert_allclose(model.logits_from_activations(model.transform(X[:5]), model.residual_logits(X[:5])),
                               model.logits(X[:5]), atol=1e-4)
    assert len(e) == 5


def test_same_seed_same_model_and_the_global_rng_is_untouched(bank):
    X, y, C, _ = tag_world(n=48)
    before = torch.get_rng_state()
    a = ConceptCentricTransformer(concepts=bank, **{**FAST, "max_epochs": 2}).fit(X, y, concept_labels=C)
    assert torch.equal(torch.get_rng_state(), before)
    b = ConceptCentricTransformer(concepts=bank, **{**FAST, "max_epochs": 2}).fit(X, y, concept_labels=C)
    np.testing.assert_array_equal(a.logits(X), b.logits(X))
    c = ConceptCentricTransformer(concepts=bank, **{**FAST, "max_epochs": 2, "random_state": 1}).fit(X, y)
    assert not np.allclose(a.logits(X), c.logits(X))


def test_save_load_round_trip_gives_identical_predictions_and_maps(fitted, tmp_path):
    model, X, _, _, _ = fitted
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, ConceptCentricTransformer) and loaded.dim == model.dim
    np.testing.assert_array_equal(loaded.logits(X), model.logits(X))
    np.testing.assert_array_equal(loaded.concept_maps(X), model.concept_maps(X))


def test_removing_a_concept_masks_its_slot(fitted, tmp_path):
    from sklearn.base import clone

    model, X, _, _, _ = fitted
    save_model(model, tmp_path / "m")
    m = load_model(tmp_path / "m")
    m.remove_concept(2)
    assert m.concept_names_ == ["class 0", "class 1"]
    maps = m.concept_maps(X)
    assert maps.shape == (len(X), 2, 3, 3)
    np.testing.assert_allclose(maps.sum(1), 1, rtol=1e-5)  # attention re-spreads over the kept slots
    assert not np.allclose(m.logits(X), model.logits(X))
    assert clone(m).get_params()["concepts"] is not None


def test_weight_edits_act_on_top_of_the_network(fitted, tmp_path):
    model, X, _, _, _ = fitted
    save_model(model, tmp_path / "m")
    m = load_model(tmp_path / "m")
    before = m.logits(X)
    m.coef_[1, 0] += 2.0
    np.testing.assert_allclose(m.logits(X) - before, np.outer(m.transform(X)[:, 0], [0, 2.0]), atol=1e-4)


def test_ct_variant_pooled_embeddings_and_spatial_targets(bank):
    X, y, C, tag = tag_world(n=64)
    S = np.full((64, 9, 3), np.nan, np.float32)
    S[tag, 0] = [0, 0, 1]
    ct = create_model("cct", concepts=bank, variant="ct", **{**FAST, "max_epochs": 3})
    ct.fit(X, y, concept_labels=C, spatial_concept_labels=S)
    assert not hasattr(ct.net_, "slot_attention") and ct.transform(X).shape == (64, 3)
    np.testing.assert_allclose(ct.concept_contributions(X).sum(1) + ct.intercept_, ct.logits(X),
                               atol=1e-4)  # one stream, no background: the concepts explain it all
    pooled = ConceptCentricTransformer(concepts=bank, **{**FAST, "max_epochs": 2}).fit(X.mean(1), y)
    assert pooled.concept_maps(X.mean(1)).shape == (64, 3, 1, 1)
    with pytest.raises(ValueError, match="spatial_concept_labels must have shape"):
        ct.fit(X, y, spatial_concept_labels=S[:, :4])


def test_bad_inputs_get_clear_messages(bank):
    X, y, _, _ = tag_world(n=20)
    model = ConceptCentricTransformer(concepts=bank, **{**FAST, "max_epochs": 1})
    with pytest.raises(NotFittedError):
        model.concept_maps(X)
    with pytest.raises(ValueError, match="patch tokens"):
        model.fit(X[:, :, :, None], y)
    with pytest.raises(ValueError, match="needs concepts"):
        ConceptCentricTransformer(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="divisible"):
        ConceptCentricTransformer(concepts=bank, dim=10, n_heads=3).fit(X, y)
    model.fit(X, y)
    with pytest.raises(ValueError, match="8-d tokens"):
        model.transform(X[:, :, :4])
    with pytest.raises(TypeError):
        ConceptCentricTransformer(bank)  # keyword-only


def test_overlay_and_patch_mask():
    img = np.zeros((28, 28), np.uint8)
    amap = np.zeros((7, 7))
    amap[0, 0] = 1.0
    rgb = overlay(img, amap, alpha=0.6)
    assert rgb.shape == (28, 28, 3) and rgb.dtype == np.uint8
    assert rgb[1, 1, 0] > 100 and rgb[27, 27, 0] == 0
    region = patch_mask((1, 1, 7, 7), (28, 28), (7, 7))
    assert region.sum() == 4 and region[:2, :2].all()
    with pytest.raises(TypeError, match="no spatial concept maps"):
        concept_map(object(), np.zeros((1, 4)))
