"""NeutraliseAtSource: an artifact concept neutralised in the image, located by the model's own evidence.

A tiny world: 28 x 28 images of two shapes (a vertical or a horizontal bar), a white tag stamped in
the top-left corner of most "vertical" training images; MobileNetV2 at 64 px; a KnoBo on two
shape concepts, with the tag added from examples (as a user names a shortcut).
"""

from __future__ import annotations

import numpy as np
import pytest

from cbm.bank import ConceptBank
from cbm.edits import AddConcept, Edit, NeutraliseAtSource, create_edit
from cbm.edits.preview import EvalSet, preview
from cbm.exceptions import EditError
from cbm.models.source_repair import (
    SourceRepairError,
    embed_for_model,
    repair_images,
    require_images,
)

TAG = "tag in the corner"


def _images(n: int, rng: np.random.Generator, tag_rate: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        c, w = rng.integers(11, 17), rng.integers(3, 6)
        if y[i] == 0:
            imgs[i, 6:26, c - w // 2:c + w // 2 + 1] = rng.integers(120, 200)
        else:
            imgs[i, c - w // 2:c + w // 2 + 1, 6:26] = rng.integers(120, 200)
    tags = rng.random(n) < np.where(y == 0, *tag_rate)
    return imgs, np.array(["vertical", "horizontal"])[y], tags


def _stamp(imgs: np.ndarray, tags: np.ndarray, at: tuple[int, int] | np.ndarray = (1, 1)) -> np.ndarray:
    out = imgs.copy()
    at = np.broadcast_to(np.asarray(at), (len(imgs), 2))
    for i in np.flatnonzero(tags):
        r, c = at[i]
        out[i, r:r + 6, c:c + 6] = 255
    return out


@pytest.fixture(scope="module")
def world():
    from cbm.encoders import create_encoder
    from cbm.models import create_model

    rng = np.random.default_rng(0)
    enc = create_encoder("mobilenet_v2", image_size=64, device="cpu")
    clean, y, tags = _images(80, rng, (0.9, 0.1))
    train = _stamp(clean, tags)
    X = enc.encode_images(train)
    bank = ConceptBank(["vertical bar", "horizontal bar"]).with_prior(["horizontal", "vertical"],
                                                                      np.array([[-1, 1], [1, -1]], np.float32))
    model = create_model("knobo", concepts=bank, max_epochs=40, device="cpu").fit(X, y)
    add = AddConcept.from_examples(TAG, X[tags], X[~tags], {"vertical": 1.0}, model=model)
    add.apply(model)
    tclean, ty, ttags = _images(40, np.random.default_rng(1), (0.0, 0.9))  # shifted: tags on the other class
    return {"enc": enc, "model": model, "clean": tclean, "y": ty, "tags": ttags, "test": _stamp(tclean, ttags),
            "train": train, "train_y": y, "train_X": X}


def test_it_is_an_edit_kind_that_round_trips():
    edit = create_edit("neutralise-at-source", concept=TAG, method="tokens", margin=0.5)
    assert Edit.from_dict(edit.to_dict()) == edit
    assert edit.describe().startswith("neutralise-at-source(concept='tag in the corner', method='tokens'")


def test_plan_validates_without_changing_the_model(world):
    m = world["model"]
    coef = m.coef_.copy()
    NeutraliseAtSource(TAG).plan(m)
    assert np.array_equal(m.coef_, coef) and getattr(m, "source_repair_", None) is None
    with pytest.raises(EditError, match="method"):
        NeutraliseAtSource(TAG, method="blur").plan(m)
    with pytest.raises(EditError, match="nope"):
        NeutraliseAtSource("nope").plan(m)


def test_preview_reembeds_the_images_and_reports_the_time(world):
    m, enc = world["model"], world["enc"]
    es = EvalSet.from_model(m, enc.encode_images(world["test"]), world["y"], "shifted")
    edit = NeutraliseAtSource(TAG).using({"shifted": world["test"]}, enc)
    effect = preview(m, edit, {"shifted": es})
    assert effect.timing["seconds_per_image_after"] > 0 and "time per image" in effect.report()
    assert getattr(m, "source_repair_", None) is None  # nothing committed
    with pytest.raises(EditError, match="using"):
        preview(m, NeutraliseAtSource(TAG), {"shifted": es})


def test_apply_undo_save_load_keep_the_repair(world, tmp_path):
    import copy

    from cbm.io import load_model, save_model

    m = copy.deepcopy(world["model"])
    record = NeutraliseAtSource(TAG, method="fill").apply(m)
    assert m.source_repair_["concept"] == TAG and m.source_repair_["method"] == "fill"
    save_model(m, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.source_repair_["method"] == "fill"
    assert np.allclose(loaded.source_repair_["vector"], m.source_repair_["vector"])
    a = embed_for_model(m, world["test"][:8], world["enc"])
    b = embed_for_model(loaded, world["test"][:8], world["enc"])
    assert np.allclose(a, b, atol=1e-5)
    record.undo(m)
    assert getattr(m, "source_repair_", None) is None
    with pytest.raises(EditError, match="already has a source repair"):
        NeutraliseAtSource(TAG).apply(loaded)


def test_images_with_the_artifact_change_clean_images_do_not(world):
    import copy

    m, enc = copy.deepcopy(world["model"]), world["enc"]
    NeutraliseAtSource(TAG).apply(m)
    plain = enc.encode_images(world["test"])
    X, info = repair_images(m, world["test"], enc)
    tags = world["tags"]
    assert info["fired"][tags].mean() > 0.7
    fired = info["fired"]
    assert np.abs(X[fired] - plain[fired]).max(1).min() > 1e-3  # every repaired image changed
    assert np.allclose(X[~fired], plain[~fired], atol=1e-3)  # the others are embedded as they are
    assert not fired[~tags].any() or fired[~tags].mean() < 0.2
    # the tag's evidence drops on the repaired images
    j = m.concept_names_.index(TAG)
    assert m.transform(X)[fired, j].mean() < m.transform(plain)[fired, j].mean() - 0.05


def test_it_uses_only_the_models_own_evidence(world):
    """Moving what the world records as the stamp positions changes nothing: nothing reads them."""
    import copy

    m, enc = copy.deepcopy(world["model"]), world["enc"]
    NeutraliseAtSource(TAG).apply(m)
    X1, info1 = repair_images(m, world["test"], enc)
    fake = copy.deepcopy(world)
    fake["tags"] = np.random.default_rng(5).random(len(world["tags"])) < 0.5  # random "true" positions
    X2, info2 = repair_images(m, fake["test"], enc)
    assert np.array_equal(X1, X2) and info1["boxes"] == info2["boxes"]


def test_demo_stamp_positions_are_not_read(monkeypatch):
    """The demo's data objects with random stamp flags: the repair's output is unchanged."""
    import dataclasses

    from cbm.demo.pipeline import DemoSplit

    rng = np.random.default_rng(0)
    imgs, y, tags = _images(6, rng, (0.9, 0.1))
    s = DemoSplit(images=_stamp(imgs, tags), y=y, domains=np.full(6, "site A"), stamped=tags, ids=np.arange(6))
    s2 = dataclasses.replace(s, stamped=rng.random(6) < 0.5)
    from cbm.encoders import create_encoder
    from cbm.models import create_model

    enc = create_encoder("mobilenet_v2", image_size=64, device="cpu")
    X = enc.encode_images(s.images)
    bank = ConceptBank(["a", "b"]).with_prior(["horizontal", "vertical"], np.array([[-1, 1], [1, -1]], np.float32))
    m = create_model("knobo", concepts=bank, max_epochs=5, device="cpu").fit(np.tile(X, (4, 1)), np.tile(y, 4))
    pos, neg = (X[tags], X[~tags]) if tags.any() and (~tags).any() else (X[:3], X[3:])
    AddConcept.from_examples(TAG, pos, neg, {"vertical": 1.0}, model=m).apply(m)
    NeutraliseAtSource(TAG, threshold=0.01).apply(m)  # fires everywhere: every image is repaired
    a, ia = repair_images(m, s.images, enc)
    b, ib = repair_images(m, s2.images, enc)
    assert np.array_equal(a, b) and ia["boxes"] == ib["boxes"]


def test_predicting_from_embeddings_is_refused_only_with_a_repair(world):
    import copy

    m = copy.deepcopy(world["model"])
    require_images(m)  # no repair: nothing to say
    X = world["enc"].encode_images(world["test"][:4])
    before = m.predict(X)
    NeutraliseAtSource(TAG).apply(m)
    with pytest.raises(SourceRepairError, match="needs|images"):
        require_images(m)
    assert np.array_equal(m.predict(X), before)  # the estimator API itself is unchanged


def test_explaining_an_image_applies_the_repair(world):
    import copy

    from cbm.explain import embed_image

    m, enc = copy.deepcopy(world["model"]), world["enc"]
    image = world["test"][int(np.flatnonzero(world["tags"])[0])]
    plain = embed_image(m, image, encoder=enc)
    NeutraliseAtSource(TAG).apply(m)
    assert np.allclose(embed_image(m, image, encoder=enc), embed_for_model(m, [image], enc))
    assert not np.allclose(embed_image(m, image, encoder=enc), plain, atol=1e-3)


def test_it_is_a_repair_candidate_only_with_images(world):
    from cbm.edits.repair import repair_candidates

    m, enc = world["model"], world["enc"]
    assert not any(isinstance(e, NeutraliseAtSource) for e in repair_candidates(m, "vertical", TAG)[:3])
    cands = repair_candidates(m, "vertical", TAG, images={"val": world["test"]}, encoder=enc)
    source = [e for e in cands if isinstance(e, NeutraliseAtSource)]
    assert len(source) == 1
    # suggest_repairs scores it on the re-embedded validation images (what the line below computes)
    X = source[0].embeddings(m, "val")
    assert np.allclose(X, repair_images(m, world["test"], enc, repair=source[0].repair(m))[0])


def test_with_refit_the_head_is_refitted_on_the_repaired_training_images_and_undo_restores_it(world):
    import copy

    from cbm.edits import TrainingData
    from cbm.edits.kinds import RefitRecord
    from cbm.edits.preview import edited_copy

    m, enc = copy.deepcopy(world["model"]), world["enc"]
    coef = m.coef_.copy()
    data = TrainingData(world["train_X"], world["train_y"])
    edit = NeutraliseAtSource(TAG, refit=True).using({"train": world["train"], "shifted": world["test"]}, enc, data)
    assert edit.short_label() == "neutralise-at-source (refit)"
    record = edit.apply(m)
    assert isinstance(record, RefitRecord) and record.changes  # the head moved
    assert m.source_repair_["concept"] == TAG and not np.array_equal(m.coef_, coef)
    expected = copy.deepcopy(world["model"]).refit(edit.embeddings(world["model"], "train"), world["train_y"])
    assert np.allclose(m.coef_, expected.coef_, atol=1e-5)  # the same refit, on the repaired images
    record.undo(m)
    assert np.array_equal(m.coef_, coef) and getattr(m, "source_repair_", None) is None
    # preview and the edited copy agree: the refitted head scores the repaired images
    es = EvalSet.from_model(world["model"], enc.encode_images(world["test"]), world["y"], "shifted")
    effect = preview(world["model"], edit, {"shifted": es})
    m2 = edited_copy(world["model"], edit)[0]
    after = (m2.predict(edit.embeddings(world["model"], "shifted")) == world["y"]).mean()
    assert effect.accuracy.query("group == 'all'")["after"].iloc[0] == pytest.approx(after)


def test_refit_needs_the_training_images(world):
    import copy

    edit = NeutraliseAtSource(TAG, refit=True).using({"shifted": world["test"]}, world["enc"])
    with pytest.raises(EditError, match="train"):
        edit.apply(copy.deepcopy(world["model"]))


def test_the_black_box_gets_the_same_source_repair_in_the_comparison(world):
    from sklearn.linear_model import LogisticRegression

    from cbm.edits import TrainingData
    from cbm.edits.repair import compare_baselines

    m, enc = world["model"], world["enc"]
    probe = LogisticRegression(max_iter=500).fit(world["train_X"], world["train_y"])
    data = TrainingData(world["train_X"], world["train_y"])
    edit = NeutraliseAtSource(TAG, refit=True).using({"train": world["train"], "shifted": world["test"]}, enc, data)
    es = EvalSet.from_model(m, enc.encode_images(world["test"]), world["y"], "shifted", keep_X=True)
    table = compare_baselines(m, edit, {"shifted": es}, probe, data, cls="vertical").set_index("model")
    fixed = LogisticRegression(max_iter=500).fit(edit.embeddings(m, "train"), world["train_y"])
    expected = (fixed.predict(edit.embeddings(m, "shifted")) == world["y"]).mean()
    assert table.loc["black box + same fix", "accuracy"] == pytest.approx(expected)


def test_split_embeddings_of_a_repaired_model_come_from_its_images(world, tmp_path):
    """load_evalsets (cbm eval, cbm edit preview) re-embeds each split's images with the repair, and
    refuses a split without images instead of scoring its pooled embeddings."""
    import copy

    from cbm.edits.preview import head_token, load_evalsets
    from cbm.models.source_repair import model_embeddings

    m, enc = copy.deepcopy(world["model"]), world["enc"]
    token = head_token(m)
    plain = enc.encode_images(world["test"])
    np.savez(tmp_path / "with.npz", X_test=plain, y_test=world["y"], images_test=world["test"])
    np.savez(tmp_path / "without.npz", X_test=plain, y_test=world["y"])
    NeutraliseAtSource(TAG).apply(m)
    assert head_token(m) != token  # caches keyed by the head see the repair
    es = load_evalsets(m, tmp_path / "with.npz", ["test"], keep_X=True, encoder=enc)["test"]
    assert np.allclose(es.X, model_embeddings(m, plain, world["test"], enc), atol=1e-5)
    assert not np.allclose(es.X, plain, atol=1e-4)
    with pytest.raises(SourceRepairError, match="has no images_test"):
        load_evalsets(m, tmp_path / "without.npz", ["test"])
    assert model_embeddings(world["model"], plain) is plain  # no repair: the embeddings as they are


def test_a_cache_folder_keeps_the_repaired_embeddings_for_the_next_run(world, tmp_path, monkeypatch):
    import cbm.edits.source as source

    m, enc = world["model"], world["enc"]
    X = NeutraliseAtSource(TAG).using({"val": world["test"]}, enc, cache_dir=tmp_path).embeddings(m, "val")
    assert len(list(tmp_path.glob("*.npy"))) == 1
    with monkeypatch.context() as patch:
        patch.setattr(source, "repair_images", lambda *a, **k: pytest.fail("recomputed"))
        again = NeutraliseAtSource(TAG).using({"val": world["test"]}, enc, cache_dir=tmp_path)
        assert np.array_equal(again.embeddings(m, "val"), X)  # read back, not recomputed
        other = NeutraliseAtSource(TAG, max_cells=1).using({"val": world["test"]}, enc, cache_dir=tmp_path)
        with pytest.raises(pytest.fail.Exception, match="recomputed"):
            other.embeddings(m, "val")  # another repair is another key
    next(tmp_path.glob("*.npy")).write_bytes(b"damaged")
    fresh = NeutraliseAtSource(TAG).using({"val": world["test"]}, enc, cache_dir=tmp_path)
    assert np.allclose(fresh.embeddings(m, "val"), X, atol=1e-6)  # a damaged file is recomputed, not trusted
