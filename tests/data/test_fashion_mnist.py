"""Fashion-MNIST from idx files (Debian's package when present, else a tiny generated copy)."""

import gzip

import numpy as np
import pytest

from cbm.data import load_fashion_mnist
from cbm.data.fashion_mnist import SYSTEM_DIR, read_idx
from cbm.exceptions import DataError


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_root(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (7, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(7) % 10)
    return tmp_path


def test_reads_idx_files_from_root(tiny_root):
    ds = load_fashion_mnist("test", root=tiny_root)
    assert len(ds) == 7 and ds.images.shape == (7, 28, 28)
    assert ds.classes[ds.labels[1]] == "Trouser" and ds.ids[0] == "test/0"
    assert ds[0].mode == "RGB"


def test_limit_keeps_the_first_images(tiny_root):
    ds = load_fashion_mnist("test", root=tiny_root, limit=3)
    assert list(ds.labels) == [0, 1, 2]


@pytest.mark.skipif(not (SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_system_copy_has_the_real_test_set():
    ds = load_fashion_mnist("test", limit=100)
    full = read_idx(SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz")
    assert full.shape == (10000,) and np.bincount(full).tolist() == [1000] * 10
    assert ds.images.shape == (100, 28, 28) and ds.labels[0] == 9  # the first test image is an ankle boot


def test_truncated_file_is_named(tiny_root):
    raw = gzip.decompress((tiny_root / "t10k-images-idx3-ubyte.gz").read_bytes())
    bad = tiny_root / "cut" / "t10k-images-idx3-ubyte.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"cut/t10k-images-idx3-ubyte\.gz.*truncated"):
        read_idx(bad)


def test_missing_files_name_the_places_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setattr("cbm.data.fashion_mnist.search_dirs", lambda root=None: [tmp_path])
    with pytest.raises(DataError, match=r"not found in .*apt-get install dataset-fashion-mnist.*download=True"):
        load_fashion_mnist("train")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")
