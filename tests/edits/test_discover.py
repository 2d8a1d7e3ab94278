"""discover_shortcuts: a shortcut no concept names is found from the training site's own data."""

from __future__ import annotations

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.edits import AddConcept
from cbm.edits.discover import (
    ShortcutCandidate,
    candidate_evidence,
    concept_directions,
    discover_shortcuts,
    load_candidates,
    save_candidates,
)
from cbm.exceptions import DataError, EditError
from cbm.models import create_model


def _world(spurious: bool, seed: int = 0):
    """A world whose bank lacks the planted concept: nobody named it."""
    world = make_concept_world(n_classes=5, n_concepts=20, n_samples=2000, dim=64, spurious=spurious,
                               random_state=seed)
    m = len(world.bank)
    bank = world.bank.subset(list(range(m - 1))) if spurious else world.bank
    return world, bank, np.asarray(world.class_names)


def _fit(method: str, world, bank, names):
    model = create_model(method, concepts=bank)
    kw = {"X_val": world["val"].X, "y_val": names[world["val"].y]} if "X_val" in model.fit_param_names() else {}
    return model.fit(world["train"].X, names[world["train"].y], **kw)


@pytest.fixture(scope="module")
def planted():
    world, bank, names = _world(True)
    return world, names, {m: _fit(m, world, bank, names) for m in ("pcbm", "knobo")}


@pytest.fixture(scope="module")
def null():
    world, bank, names = _world(False)
    return world, names, _fit("pcbm", world, bank, names)


def _flags(world, split: str) -> np.ndarray:
    return world[split].concepts[:, world.spurious_index].astype(bool)


class TestPlantedShortcut:
    @pytest.mark.parametrize("method", ["pcbm", "knobo"])
    @pytest.mark.parametrize("split", ["train", "val"])
    def test_top_candidates_hold_the_flagged_images_of_the_spurious_class(self, planted, method, split):
        world, names, models = planted
        s = world[split]
        cands = discover_shortcuts(models[method], s.X, names[s.y], top=5)
        precision = [float(_flags(world, split)[c.indices].mean()) for c in cands[:3]]
        hit = [c for c, p in zip(cands[:3], precision, strict=False) if p >= 0.8]
        assert hit, f"no top-3 candidate is >= 80% flagged: {precision}"
        assert hit[0].class_name == world.class_names[world.spurious_class]
        assert hit[0].rank == 1  # on this world the shortcut is the clearest group
        recall = _flags(world, split)[hit[0].indices].sum() / _flags(world, split).sum()
        assert recall > 0.6

    def test_shares_and_correlation_describe_the_group(self, planted):
        world, names, models = planted
        s = world["val"]
        c = discover_shortcuts(models["pcbm"], s.X, names[s.y], top=1)[0]
        in_class = names[s.y] == c.class_name
        member = np.zeros(len(s.y), bool)
        member[c.indices] = True
        assert c.share_in_class == pytest.approx(member[in_class].mean())
        assert c.share_elsewhere == pytest.approx(member[~in_class].mean())
        assert c.share_in_class > 0.7 > 0.15 > c.share_elsewhere
        assert c.class_correlation == pytest.approx(np.corrcoef(member, in_class)[0, 1], abs=1e-6)
        assert 0.0 <= c.support <= 1.0 and 0.0 < c.separation <= 1.0

    def test_direction_is_unit_and_off_the_concept_span(self, planted):
        world, names, models = planted
        model = models["pcbm"]
        c = discover_shortcuts(model, world["val"].X, names[world["val"].y], top=1)[0]
        assert np.linalg.norm(c.direction) == pytest.approx(1.0, abs=1e-5)
        C = concept_directions(model)
        Q, _ = np.linalg.qr(C.T)
        assert np.linalg.norm(Q.T @ c.direction) < 1e-3
        # the group lies on the high side of its direction
        proj = world["val"].X @ c.direction
        member = np.zeros(len(proj), bool)
        member[c.indices] = True
        assert proj[member].min() > proj[~member].max() - 1e-6

    def test_reliance_is_the_probability_drop_when_the_group_offset_is_removed(self, planted):
        world, names, models = planted
        s = world["val"]
        model = models["knobo"]
        c = discover_shortcuts(model, s.X, names[s.y], top=1)[0]
        member = np.zeros(len(s.y), bool)
        member[c.indices] = True
        y = names[s.y]
        offsets, weights = [], []
        for cls in np.unique(y):
            inside, outside = member & (y == cls), ~member & (y == cls)
            if inside.any() and outside.any():
                offsets.append(s.X[inside].mean(0) - s.X[outside].mean(0))
                weights.append(inside.sum())
        delta = np.average(offsets, axis=0, weights=weights)
        k = model.class_names_.index(c.class_name)
        drop = model.predict_proba(s.X[member])[:, k] - model.predict_proba((s.X[member] - delta).astype(np.float32))[:, k]
        assert c.reliance == pytest.approx(drop.mean(), abs=1e-4)
        assert c.support == pytest.approx(
            np.linalg.norm(np.linalg.qr(concept_directions(model).T)[0].T @ delta) ** 2 / (delta @ delta), abs=1e-3)


class TestNoShortcut:
    def test_top_score_is_clearly_lower_without_a_planted_shortcut(self, planted, null):
        world, names, models = planted
        planted_top = discover_shortcuts(models["pcbm"], world["val"].X, names[world["val"].y], top=1)[0].score
        nworld, nnames, nmodel = null
        null_top = discover_shortcuts(nmodel, nworld["val"].X, nnames[nworld["val"].y], top=1)
        null_score = null_top[0].score if null_top else 0.0
        assert planted_top > 0.3
        assert null_score < 0.1
        assert planted_top > 4 * null_score


class TestRanking:
    def test_ranks_scores_and_top(self, planted):
        world, names, models = planted
        s = world["val"]
        cands = discover_shortcuts(models["pcbm"], s.X, names[s.y], top=4)
        assert 1 <= len(cands) <= 4
        assert [c.rank for c in cands] == list(range(1, len(cands) + 1))
        scores = [c.score for c in cands]
        assert scores == sorted(scores, reverse=True)
        assert discover_shortcuts(models["pcbm"], s.X, names[s.y], top=1)[0].score == scores[0]

    def test_candidates_are_distinct_groups(self, planted):
        world, names, models = planted
        s = world["val"]
        cands = discover_shortcuts(models["pcbm"], s.X, names[s.y], top=6)
        sets = [set(c.indices.tolist()) for c in cands]
        for i in range(len(sets)):
            for j in range(i + 1, len(sets)):
                assert len(sets[i] & sets[j]) / len(sets[i] | sets[j]) <= 0.5

    def test_same_input_same_output(self, planted):
        world, names, models = planted
        s = world["val"]
        a = discover_shortcuts(models["knobo"], s.X, names[s.y], top=3)
        b = discover_shortcuts(models["knobo"], s.X, names[s.y], top=3)
        assert [c.indices.tolist() for c in a] == [c.indices.tolist() for c in b]


class TestConceptExamples:
    def test_positives_are_the_group_and_negatives_its_class_outside_it(self, planted):
        world, names, models = planted
        s = world["val"]
        c = discover_shortcuts(models["pcbm"], s.X, names[s.y], top=1)[0]
        pos, neg = c.concept_examples()
        assert np.array_equal(np.sort(pos), np.sort(c.indices))
        assert not set(pos.tolist()) & set(neg.tolist())
        assert len(neg) == len(set(neg.tolist()))
        # the class has few images outside the group, so other classes top the negatives up
        in_class = names[s.y] == c.class_name
        assert in_class[neg].sum() == (in_class.sum() - in_class[pos].sum())
        assert len(neg) == len(pos)
        assert c.concept_examples()[1].tolist() == neg.tolist()  # seeded

    def test_no_top_up_when_the_class_has_enough_negatives(self):
        c = ShortcutCandidate(1, "a", np.array([0, 1]), np.ones(3, np.float32) / 3 ** 0.5, 0.5, 0.5, 0.5, 0.2, 0.0,
                              0.0, 0.0, np.array([0, 1, 2, 3, 4]), 10)
        pos, neg = c.concept_examples()
        assert pos.tolist() == [0, 1] and neg.tolist() == [2, 3, 4]

    def test_examples_make_a_concept_that_finds_the_group(self, planted):
        world, names, models = planted
        model = models["pcbm"]
        s = world["val"]
        c = discover_shortcuts(model, s.X, names[s.y], top=1)[0]
        pos, neg = c.concept_examples()
        edit = AddConcept.from_examples("tag", s.X[pos], s.X[neg], {c.class_name: 0.0}, model=model)
        score = model.score_concept_vectors(world["test"].X, np.asarray([edit.vector]), np.asarray([edit.intercept]))
        flags = _flags(world, "test")
        from sklearn.metrics import roc_auc_score

        assert roc_auc_score(flags, score[:, 0]) > 0.95


class TestFiles:
    def test_round_trip_and_one_rank(self, planted, tmp_path):
        world, names, models = planted
        s = world["val"]
        cands = discover_shortcuts(models["pcbm"], s.X, names[s.y], top=3)
        ids = np.asarray([f"val-{i}" for i in range(len(s.y))])
        path = save_candidates(tmp_path / "c.json", cands, ids=ids, data="d.npz", split="val")
        back = load_candidates(path)
        assert [c.rank for c in back] == [c.rank for c in cands]
        for a, b in zip(cands, back, strict=True):
            assert np.array_equal(a.indices, b.indices) and a.class_name == b.class_name
            assert a.concept_examples()[1].tolist() == b.concept_examples()[1].tolist()
        one = load_candidates(f"{path}#2")
        assert len(one) == 1 and one[0].rank == 2
        assert one[0].source["split"] == "val" and one[0].source["data"] == "d.npz"
        assert one[0].source["positive_ids"] == ids[one[0].concept_examples()[0]].tolist()

    def test_missing_rank_lists_the_ranks(self, planted, tmp_path):
        world, names, models = planted
        s = world["val"]
        path = save_candidates(tmp_path / "c.json", discover_shortcuts(models["pcbm"], s.X, names[s.y], top=2))
        with pytest.raises(DataError, match=r"no candidate of rank '7'.*ranks \[1, 2\]"):
            load_candidates(f"{path}#7")

    def test_not_a_candidates_file(self, tmp_path):
        (tmp_path / "x.json").write_text('{"a": 1}')
        with pytest.raises(DataError, match="not a candidates file"):
            load_candidates(tmp_path / "x.json")
        with pytest.raises(DataError, match="not found"):
            load_candidates(tmp_path / "nope.json")


class TestErrors:
    def test_unknown_class_is_named(self, planted):
        world, names, models = planted
        s = world["val"]
        y = names[s.y].copy()
        y[0] = "cardinall"
        with pytest.raises(DataError, match="Unknown class 'cardinall'. Did you mean 'cardinal'"):
            discover_shortcuts(models["pcbm"], s.X, y)

    def test_wrong_width(self, planted):
        world, names, models = planted
        with pytest.raises(DataError, match=r"shape \(400, 10\)"):
            discover_shortcuts(models["pcbm"], world["val"].X[:, :10], names[world["val"].y])

    def test_bad_top(self, planted):
        world, names, models = planted
        with pytest.raises(ValueError, match="top must be a positive integer; got 0"):
            discover_shortcuts(models["pcbm"], world["val"].X, names[world["val"].y], top=0)

    def test_a_probe_has_no_residual(self, planted):
        world, names, _ = planted
        probe = create_model("linear-probe").fit(world["train"].X, names[world["train"].y])
        with pytest.raises(EditError, match="span the whole 64-d embedding"):
            discover_shortcuts(probe, world["val"].X, names[world["val"].y])


class _PixelEncoder:
    """Embeds an image as ``base + brightness of its top-left quarter * g``."""

    def __init__(self, base: np.ndarray, g: np.ndarray) -> None:
        self.base, self.g = base, g

    def encode_images(self, images) -> np.ndarray:
        arr = np.stack([np.asarray(im, np.float32).mean(-1) for im in images]) / 255.0
        return (self.base + arr[:, :8, :8].mean((1, 2))[:, None] * self.g).astype(np.float32)


def test_evidence_is_the_occlusion_map_of_the_class_logit(planted):
    world, names, models = planted
    model = models["pcbm"]
    k = 0
    x0 = world["val"].X[:1].astype(np.float64)
    eye = np.eye(x0.shape[1])
    g = (model.logits((x0 + eye).astype(np.float32))[:, k] - model.logits(x0.astype(np.float32))[0, k])
    img = np.zeros((16, 16, 3), np.uint8)
    img[:8, :8] = 255
    maps = candidate_evidence(model, [img, img], model.class_names_[k], _PixelEncoder(x0[0], g), patch=8, stride=8,
                              fill=0)
    assert len(maps) == 2 and maps[0].shape == (16, 16)
    assert maps[0][:8, :8].mean() > 0.1
    assert np.abs(maps[0][8:, 8:]).max() < 1e-4
