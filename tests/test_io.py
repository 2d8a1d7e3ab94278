"""Model directories: versioned, validated on load, and never left half-written."""

import json

import numpy as np
import pytest

from cbm.exceptions import ModelDirError
from cbm.io import list_versions, load_config, load_model, read_pointer, save_model
from cbm.models import create_model


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "up", "down")
    return create_model("linear-probe").fit(X, y), X


def test_each_save_is_a_new_version_and_old_versions_reload_bit_for_bit(fitted, tmp_path):
    model, X = fitted
    assert save_model(model, tmp_path, note="first", fingerprints={"encoder": "e"}) == 1
    before = model.decision_function(X)
    model.coef_ = model.coef_ * 2
    assert save_model(model, tmp_path, note="second") == 2
    assert list_versions(tmp_path) == [1, 2]
    np.testing.assert_array_equal(load_model(tmp_path, version=1).decision_function(X), before)
    np.testing.assert_array_equal(load_model(tmp_path).coef_, model.coef_)
    assert load_config(tmp_path)["fingerprints"] == {"encoder": "e"}  # carried over to new versions


def test_interrupted_save_leaves_the_previous_version_intact(fitted, tmp_path, monkeypatch):
    model, X = fitted
    save_model(model, tmp_path)
    import cbm.io

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cbm.io, "atomic_write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, tmp_path)
    assert read_pointer(tmp_path)["versions"] == [1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".v")]  # no half-written version left
    np.testing.assert_array_equal(load_model(tmp_path).decision_function(X), model.decision_function(X))


def test_missing_or_foreign_directories_say_what_to_do(tmp_path):
    with pytest.raises(ModelDirError, match="does not exist.*cbm train"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelDirError, match="model.json is missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ModelDirError, match="other/9"):
        load_model(tmp_path)


def test_corrupt_weights_and_unknown_versions_are_named(fitted, tmp_path):
    model, _ = fitted
    save_model(model, tmp_path)
    with pytest.raises(ModelDirError, match="no version 7"):
        load_model(tmp_path, version=7)
    (tmp_path / "v0001" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="weights.safetensors.*corrupt"):
        load_model(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from cbm._io import atomic_path, atomic_write_json

    target = tmp_path / "state.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
