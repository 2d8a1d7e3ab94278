"""make_splits: seeded, disjoint, stratified, recorded."""

import numpy as np
import pytest

from cbm.data import make_splits


def test_splits_are_disjoint_cover_and_follow_fractions():
    s = make_splits(100, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    allidx = np.concatenate(list(s.values()))
    assert sorted(allidx.tolist()) == list(range(100))
    assert {k: len(v) for k, v in s.items()} == {"train": 60, "val": 20, "test": 20}


def test_same_seed_same_indices_other_seed_differs():
    a, b, c = make_splits(50, (0.8, 0.2), seed=1), make_splits(50, (0.8, 0.2), seed=1), make_splits(50, (0.8, 0.2), seed=2)
    assert a.record() == b.record() and a.record()["sha256"] != c.record()["sha256"]
    assert list(a) == ["train", "test"]


def test_stratified_keeps_class_proportions():
    labels = np.array([0] * 80 + [1] * 20)
    s = make_splits(100, (0.5, 0.5), seed=0, stratify=labels)
    assert np.bincount(labels[s["train"]]).tolist() == [40, 10]
    assert s.record()["stratified"] is True


def test_bad_fractions_and_labels():
    with pytest.raises(ValueError, match="sum to at most 1"):
        make_splits(10, (0.8, 0.5))
    with pytest.raises(ValueError, match="one label per sample"):
        make_splits(10, (0.5, 0.5), stratify=[0, 1])
