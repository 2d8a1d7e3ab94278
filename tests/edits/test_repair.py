"""Choosing a repair: independence weights, the LEACE eraser helper, and the choice itself (scored by
group-balanced validation accuracy, never an edit that does not beat "no edit" beyond the noise)."""

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.edits import Prune, ScaleWeight, SetWeight
from cbm.edits.preview import EvalSet
from cbm.edits.repair import (
    erase_with,
    group_balanced_accuracy,
    independence_weights,
    suggest_repairs,
    worst_group_accuracy,
)
from cbm.models import create_model


def test_independence_weights_make_the_flag_independent_of_the_class():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    flags = rng.random(2000) < np.where(y == 2, 0.95, 0.05)  # confounded with class 2
    w = independence_weights(y, flags)
    rates = [np.average(flags[y == c], weights=w[y == c]) for c in range(4)]
    assert np.ptp(rates) < 1e-9
    assert np.isclose(w.mean(), 1.0)


def test_erase_with_applies_x_minus_L_R_x_minus_bias():
    d = 5
    u = np.zeros((d, 1), np.float32)
    u[0] = 1
    X = np.arange(10, dtype=np.float32).reshape(2, d)
    out = erase_with((u, u.T, np.zeros(d, np.float32)), X)
    assert (out[:, 0] == 0).all() and np.array_equal(out[:, 1:], X[:, 1:])


def test_the_black_box_given_the_same_fix_is_refitted_once_per_eraser_and_data():
    """Previewing several edits of one concept (the app's Edit page) refits the black box once."""
    from sklearn.linear_model import LogisticRegression

    from cbm.edits import TrainingData
    from cbm.edits.repair import _black_box_with_eraser

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 2, 60)
    u = np.eye(4, 1, dtype=np.float32)
    eraser = (u, u.T, np.zeros(4, np.float32))
    data = TrainingData(X, y)
    bb = LogisticRegression()
    first = _black_box_with_eraser(bb, eraser, data)
    assert _black_box_with_eraser(bb, eraser, TrainingData(X.copy(), y.copy())) is first  # same content
    assert np.allclose(first.coef_[:, 0], 0, atol=1e-6)  # it never sees the erased direction
    assert _black_box_with_eraser(bb, eraser, TrainingData(X[:50], y[:50])) is not first


def test_class_conditional_eraser_columns_never_tell_the_classes_apart():
    """Each column is the concept's flags centred within one class, so erasing them keeps class means."""
    from cbm.edits._refit_edits import within_class_columns

    y = np.array(["a"] * 6 + ["b"] * 6 + ["c"] * 4)
    flags = np.array([1, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 0] + [1, 1, 1, 1], bool)  # c: always on
    Z = within_class_columns(flags, y)
    assert Z.shape == (16, 2)  # class c has no images without the concept: no column
    for c in ("a", "b", "c"):
        np.testing.assert_allclose(Z[y == c].mean(0), 0, atol=1e-7)


# -- choosing a repair that cannot quietly hurt --------------------------------------------------

def test_group_balanced_accuracy_counts_each_class_with_and_without_the_concept_equally():
    y = np.array([0, 0, 0, 0, 1, 1])
    flags = np.array([1, 1, 1, 0, 0, 0], bool)
    correct = np.array([1, 1, 1, 0, 1, 1], bool)
    assert group_balanced_accuracy(correct, y, flags) == 0.75  # class 0: (1 + 0) / 2, class 1: 1
    assert worst_group_accuracy(correct, y, flags, min_size=1) == 0.0
    assert worst_group_accuracy(correct, y, flags, min_size=2) == 1.0  # the 1-image cell is left out


@pytest.fixture(scope="module")
def leaning_model():
    """PCBM on a world whose class 0 co-occurs with a spurious concept, and its validation split."""
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=600, dim=32, random_state=1)
    names = np.asarray(world.class_names)
    model = create_model("pcbm", concepts=world.bank, device="cpu").fit(
        world["train"].X, names[world["train"].y])
    val = EvalSet.from_model(model, world["test"].X, world["test"].y, "val", class_names=world.class_names)
    return model, val, names[world.spurious_class], world.bank.names[world.spurious_index]


def test_an_edit_no_better_than_no_edit_is_never_chosen(leaning_model):
    model, val, k, c = leaning_model
    same = ScaleWeight(k, c, 1.0)  # changes nothing: its gain is exactly 0 on every resample
    worse = SetWeight(k, c, 25.0)  # leans on the concept much harder
    reps = suggest_repairs(model, val, k, c, candidates=[None, same, worse])
    assert reps.iloc[0]["edit"] is None and reps["chosen"].sum() == 1
    by_name = reps.set_index("name")
    assert by_name.loc[same.describe(), "gain"] == 0 and by_name.loc[same.describe(), "gain_low"] == 0
    assert by_name.loc[worse.describe(), "gain_low"] < 0


def test_the_chosen_edit_beats_no_edit_beyond_the_bootstrap_noise(leaning_model):
    model, val, k, c = leaning_model
    seen = []
    reps = suggest_repairs(model, val, k, c, candidates=[None, Prune(k, c), SetWeight(k, c, 25.0)],
                           progress=lambda i, n, name: seen.append((i, n)))
    assert seen[-1] == (3, 3) and len(seen) == 4
    assert (reps["score_se"] > 0).all() and (reps["gain_low"] <= reps["gain"] + 1e-12).all()
    chosen = reps.iloc[0]
    assert chosen["chosen"]
    if chosen["edit"] is not None:
        assert chosen["gain_low"] > 0 and chosen["score"] == reps.loc[reps["gain_low"] > 0, "score"].max()


def test_a_two_class_model_gets_a_repair_table_too():
    world = make_concept_world(n_classes=2, n_concepts=6, n_samples=400, dim=16, random_state=2)
    names = np.asarray(world.class_names)
    model = create_model("pcbm", concepts=world.bank, device="cpu").fit(world["train"].X, names[world["train"].y])
    val = EvalSet.from_model(model, world["test"].X, world["test"].y, "val", class_names=world.class_names)
    k, c = names[world.spurious_class], world.bank.names[world.spurious_index]
    reps = suggest_repairs(model, val, k, c, candidates=[None, Prune(k, c)])
    assert reps["score"].notna().all() and reps["chosen"].sum() == 1
