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


def test_a_save_killed_after_the_rename_is_completed_by_the_next_save(fitted, tmp_path, monkeypatch):
    model, X = fitted
    save_model(model, tmp_path)
    import cbm.io

    real = cbm.io.atomic_write_json

    def die_before_pointer(path, obj):
        if path.name == "model.json":
            raise KeyboardInterrupt  # the version folder is already renamed into place
        real(path, obj)

    monkeypatch.setattr(cbm.io, "atomic_write_json", die_before_pointer)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, tmp_path, note="killed")
    monkeypatch.undo()
    assert read_pointer(tmp_path)["versions"] == [1] and (tmp_path / "v0002").is_dir()
    assert save_model(model, tmp_path, note="next") == 3  # no "Directory not empty"
    assert list_versions(tmp_path) == [1, 2, 3] and load_config(tmp_path, 2)["note"] == "killed"


def test_version_numbers_come_from_the_folders_on_disk_and_temp_folders_are_cleaned(fitted, tmp_path):
    model, _ = fitted
    save_model(model, tmp_path)
    (tmp_path / "v0005").mkdir()  # a folder no save recorded (copied by hand): its number is skipped
    (tmp_path / ".v0002.k3j4h5").mkdir()  # left by a killed save
    (tmp_path / ".model.json.abc.tmp").write_text("{")
    assert save_model(model, tmp_path) == 6
    assert list_versions(tmp_path) == [1, 6] and load_config(tmp_path)["parent"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "model.json", "v0001", "v0005", "v0006"]


def test_the_lock_excludes_other_holders_and_says_who_to_wait_for(tmp_path):
    import threading

    from cbm.io import model_dir_lock

    held, release = threading.Event(), threading.Event()

    def hold():
        with model_dir_lock(tmp_path), model_dir_lock(tmp_path):  # re-entrant in one thread
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    with pytest.raises(ModelDirError, match="locked by another cbm process.*CBM_LOCK_TIMEOUT"):
        with model_dir_lock(tmp_path, timeout=0.2):
            pass
    release.set()
    t.join()
    with model_dir_lock(tmp_path, timeout=0.2):
        pass


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "model.json.*not text"),
    (b"[1, 2]", "model.json.*should be a JSON object"),
    (b'{"format": "cbmkit-model/1", "method": "x", "current": 1}', "model.json.*lacks.*versions"),
    (b'{"format": "cbmkit-model/1", "method": "x", "current": "1", "versions": [1]}', "'current' should be an integer"),
    (b'{"format": "cbmkit-model/1", "method": "x", "current": 2, "versions": [1]}', "current version 2 is not among"),
])
def test_a_pointer_of_the_wrong_shape_or_binary_names_the_file(fitted, tmp_path, content, message):
    save_model(fitted[0], tmp_path)
    (tmp_path / "model.json").write_bytes(content)
    with pytest.raises(ModelDirError, match=message):
        load_model(tmp_path)


def test_a_config_or_metrics_file_of_the_wrong_shape_names_the_file(fitted, tmp_path):
    from cbm.io import load_metrics

    save_model(fitted[0], tmp_path, metrics={"test": {"accuracy": 0.9}})
    (tmp_path / "v0001" / "metrics.json").write_text("[0.9]")
    with pytest.raises(ModelDirError, match="metrics.json.*should be a JSON object"):
        load_metrics(tmp_path)
    config = json.loads((tmp_path / "v0001" / "config.json").read_text())
    (tmp_path / "v0001" / "config.json").write_text(json.dumps({**config, "classes": "up,down"}))
    with pytest.raises(ModelDirError, match="config.json.*'classes' should be a list"):
        load_model(tmp_path)
    (tmp_path / "v0001" / "config.json").write_text(json.dumps({**config, "version": 4}))
    with pytest.raises(ModelDirError, match="says it is version 4"):
        load_model(tmp_path)


def test_a_file_where_the_model_directory_should_be_is_refused(fitted, tmp_path):
    (tmp_path / "f").write_text("notes")
    with pytest.raises(ModelDirError, match="'.*f' is a file"):
        save_model(fitted[0], tmp_path / "f")
    with pytest.raises(ModelDirError, match="lies under .* which is a file"):
        save_model(fitted[0], tmp_path / "f" / "model")
    with pytest.raises(ModelDirError, match="is a file, not a model directory"):
        load_model(tmp_path / "f")
