"""The evaluation-data file: written once by save_eval_data, read back by every reader in cbm.data.evalfile."""

import json

import numpy as np
import pytest

from cbm.data.evalfile import load_eval_data, read_arrays, save_eval_data
from cbm.exceptions import DataError


def test_saved_splits_come_back_in_display_order_with_names_decoded(tmp_path):
    path = save_eval_data(tmp_path / "data.npz", {
        "val": {"X": np.ones((2, 3)), "y": np.array([0, 1])},
        "test": {"X": np.zeros((1, 3)), "y": np.array([1]), "ids": np.array(["s1"])},
    }, class_names=["cat", "dog"])
    splits = load_eval_data(path)
    assert list(splits) == ["test", "val"]
    assert splits["test"]["y"].tolist() == ["dog"] and splits["test"]["X"].dtype == np.float32
    assert sorted(read_arrays(path)) == ["X_test", "X_val", "class_names", "ids_test", "y_test", "y_val"]


def test_a_damaged_file_gets_one_message_naming_it(tmp_path):
    bad = tmp_path / "data.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="Evaluation data .*data.npz.* cannot be read"):
        load_eval_data(bad)
    with pytest.raises(DataError, match="not found"):
        read_arrays(tmp_path / "missing.npz")


def test_split_names_with_sites_keep_their_own_arrays_and_the_encoder_round_trips(tmp_path):
    split = {"X": np.ones((2, 3)), "y": np.array(["a", "b"]), "domains": np.array(["x_test", "x_test"])}
    spec = {"name": "flat", "pretrained": None, "fingerprint": "flat-3"}
    save_eval_data(tmp_path / "d.npz", {"test": {**split, "X": np.zeros((1, 3)), "y": np.array(["a"]),
                                                 "domains": np.array(["a"])},
                                        "test@x_test": split}, encoder=spec)
    data = load_eval_data(tmp_path / "d.npz")
    assert data["test"]["X"].shape == (1, 3) and set(data["test"]) == {"X", "y", "domains"}
    assert data["test@x_test"]["domains"].tolist() == ["x_test", "x_test"]
    arrays = read_arrays(tmp_path / "d.npz")
    assert json.loads(str(arrays["encoder_spec"])) == spec and str(arrays["encoder"]) == "flat-3"
