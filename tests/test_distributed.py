"""cbm.distributed: the EmbeddingStore filled, scored and searched by Ray workers, same bytes and
answers as one process; a worker killed mid-shard, and the rerun that completes the store."""

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch

from cbm.data.folders import load_digits_images
from cbm.distributed import ray_session
from cbm.encoders import Encoder
from cbm.exceptions import ClusterUnreachableError, MissingDependencyError, WorkerLostError
from cbm.kernels import concept_scores, concept_search
from cbm.store import EmbeddingStore

SHARD = 16  # 50 digits -> 4 shards (16, 16, 16, 2 rows)


class PixelEncoder(Encoder):
    """A fast deterministic encoder (a fixed projection of 8x8 pixels); ``delay`` seconds per batch,
    and with ``pid_dir`` each worker process drops a ``<pid>`` file when it starts encoding."""

    name = "pixels"
    dim = 6
    fingerprint = "pixels|v1"

    def __init__(self, delay=0.0, pid_dir=None):
        self.device = torch.device("cpu")
        self.W = torch.from_numpy(np.random.default_rng(1).normal(size=(64, self.dim)).astype(np.float32))
        self.delay, self.pid_dir = delay, pid_dir

    def preprocess(self, image):
        return torch.from_numpy(np.asarray(image.convert("L").resize((8, 8)), np.float32) / 255)[None]

    def _encode_batch(self, x):
        if self.pid_dir is not None:
            (self.pid_dir / str(os.getpid())).touch()
        time.sleep(self.delay)
        return x[:, 0].reshape(len(x), -1) @ self.W


@pytest.fixture(scope="module")
def digits():
    return load_digits_images(50)


@pytest.fixture(scope="module")
def local_store(tmp_path_factory, digits):
    """The reference: the entry written by one process."""
    store = EmbeddingStore(tmp_path_factory.mktemp("local"), shard_size=SHARD)
    return store.get_or_compute(PixelEncoder(), digits, batch_size=8, progress=False)


def _assert_same_entry(a, b):
    """Same manifest (but its date and the zip timestamps of rows.npz), same shard files byte for
    byte, same rows."""
    ma, mb = (json.loads((c.path / "manifest.json").read_text()) for c in (a, b))
    for m in (ma, mb):
        m.pop("created"), m["rows"].pop("sha256"), m["rows"].pop("bytes")
    assert ma == mb
    for rec in ma["shards"]:
        assert (a.path / rec["file"]).read_bytes() == (b.path / rec["file"]).read_bytes()
        json_a, json_b = (json.loads((c.path / rec["file"]).with_suffix(".json").read_text())
                          for c in (a, b))
        assert json_a == json_b
    np.testing.assert_array_equal(a.as_array(dtype=None), b.as_array(dtype=None))
    assert a.ids == b.ids and list(a.indices) == list(b.indices)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.fixture(scope="module")
def ray_store(ray_cluster, tmp_path_factory, digits):
    """The same entry, written by 2 Ray workers."""
    store = EmbeddingStore(tmp_path_factory.mktemp("ray"), shard_size=SHARD)
    return store.get_or_compute(PixelEncoder(), digits, batch_size=8, progress=False, engine="ray",
                                workers=2)


def test_the_store_written_by_ray_workers_equals_the_local_one_bit_for_bit(
        ray_store, digits, local_store):
    assert not ray_store.stats.cache_hit and ray_store.stats.n_computed == 50
    assert len(ray_store.shards) == 4
    assert ray_store.path.name == local_store.path.name  # the same content key
    _assert_same_entry(ray_store, local_store)
    again = EmbeddingStore(ray_store.path.parents[1], shard_size=SHARD).get_or_compute(
        PixelEncoder(), digits, progress=False, engine="ray")
    assert again.stats.cache_hit


@pytest.mark.slow
def test_a_worker_killed_mid_shard_leaves_no_half_shard_and_the_rerun_completes_it(
        ray_cluster, tmp_path, digits, local_store):
    pids = tmp_path / "pids"
    pids.mkdir()
    killed = []

    def kill_the_first_worker():
        deadline = time.time() + 60
        while not killed and time.time() < deadline:
            for f in pids.iterdir():
                os.kill(int(f.name), signal.SIGKILL)  # mid-shard: it sleeps inside a batch
                killed.append(int(f.name))
                break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    store = EmbeddingStore(tmp_path / "cache", shard_size=SHARD)
    with pytest.raises(WorkerLostError, match="run the same command again") as err:
        store.get_or_compute(PixelEncoder(delay=0.3, pid_dir=pids), digits, batch_size=8,
                             progress=False, engine="ray", workers=2)
    killer.join()
    assert killed
    path = store.path_for(PixelEncoder(), digits)
    assert not (path / "manifest.json").exists()
    done = sorted(f.stem for f in path.glob("shard-*.json"))
    assert sorted(f.stem for f in path.glob("shard-*.npy")) == done  # no shard without its record
    lost, = {f"shard-{s:05d}" for s in range(4)} - set(done)  # the killed worker's shard, only
    assert f"shard(s) {int(lost[-5:])} " in str(err.value)
    again = store.get_or_compute(PixelEncoder(), digits, batch_size=8, progress=False,
                                 engine="ray", workers=1)
    assert again.stats.resumed_shards == len(done)
    assert not list(path.glob(".shard-*.tmp"))  # the killed writer's temp file is cleared
    _assert_same_entry(again, local_store)


def test_search_on_ray_gives_the_local_answer(ray_store, local_store):
    query = torch.randn(2, 6)
    local = concept_search(local_store, query, [1.0, -1.0], 7)
    for block_size in (5, 65536):
        scores, idx = ray_store.search(query, [1.0, -1.0], 7, engine="ray", workers=2,
                                         block_size=block_size)
        assert torch.equal(idx, local[1]) and torch.equal(scores, local[0])
    assert torch.equal(local_store.search(query, [1.0, -1.0], 7)[1], local[1])


def test_concept_scores_on_ray_give_the_local_top_k(ray_cluster, local_store):
    concepts, bias = torch.randn(5, 6), torch.randn(5)
    X = local_store.as_array(dtype=None)
    values, idx = local_store.top_scores(concepts, 2, bias=bias, scale=3.0, engine="ray", workers=2)
    ref_v, ref_i = concept_scores(X, concepts, bias=bias, scale=3.0, topk=2)
    assert torch.equal(values, ref_v) and torch.equal(idx, ref_i)
    values, rows = local_store.top_scores(concepts, 3, per="concept", engine="ray", workers=2)
    ref_v, ref_r = torch.topk(concept_scores(X, concepts), 3, dim=0)
    assert values.shape == (3, 5) and torch.equal(rows, ref_r) and torch.equal(values, ref_v)
    assert torch.equal(local_store.top_scores(concepts, 3, per="concept")[1], ref_r)


def test_without_ray_the_engine_names_the_install_command(monkeypatch, tmp_path, digits):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'cbmkit\[ray\]'"):
        EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, engine="ray")
    assert EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, progress=False) is not None


def test_bad_engine_and_worker_values_are_refused(tmp_path, digits):
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"):
        EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, engine="spark")
    with pytest.raises(ValueError, match="exclude each other"):
        EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, engine="ray", worker=(0, 2))
    with pytest.raises(ValueError, match="workers must be a positive integer; got 0"):
        EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, engine="ray", workers=0)


def test_an_address_where_no_cluster_answers_is_one_clear_error_not_a_hang(monkeypatch, tmp_path, capsys):
    from cbm.cli import main

    monkeypatch.setenv("CBM_RAY_TIMEOUT", "3")
    start = time.monotonic()
    assert main(["embed", str(tmp_path), "--engine", "ray", "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "Cannot connect to the Ray cluster at '127.0.0.1:1' (--address)" in err and "Traceback" not in err
    import cbm.distributed

    not_started = type("Ray", (), {"is_initialized": staticmethod(lambda: False)})
    monkeypatch.setattr(cbm.distributed, "import_ray", lambda: not_started)
    monkeypatch.setenv("RAY_ADDRESS", "192.0.2.1:6379")  # TEST-NET: nothing ever answers there
    with pytest.raises(ClusterUnreachableError, match=r"'192.0.2.1:6379' \(\$RAY_ADDRESS\)"):
        with ray_session():  # this module's own cluster is running: pretend none is, as for a user
            pass
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_ray_timeout_names_the_variable(monkeypatch, value):
    from cbm.distributed import check_ray_address

    monkeypatch.setenv("CBM_RAY_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"CBM_RAY_TIMEOUT must be a number of seconds > 0; got {value!r}"):
        check_ray_address("127.0.0.1:1")
