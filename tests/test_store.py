"""EmbeddingStore: cache hits, resumption, atomicity, corruption detection and streaming reads."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cbm.data.folders import ImageDataset, image_folder, load_digits_images
from cbm.encoders import Encoder
from cbm.exceptions import CacheError, DataError
from cbm.store import EmbeddingCache, EmbeddingStore, embed_texts


class PixelEncoder(Encoder):
    """A fast deterministic encoder: a fixed random projection of 8x8 grayscale pixels."""

    name = "pixels"
    supports_text = True
    dim = 6

    def __init__(self):
        self.device = torch.device("cpu")
        self.W = torch.from_numpy(np.random.default_rng(1).normal(size=(64, self.dim)).astype(np.float32))
        self.calls = 0

    fingerprint = "pixels|v1"

    def preprocess(self, image):
        return torch.from_numpy(np.asarray(image.convert("L").resize((8, 8)), np.float32) / 255)[None]

    def _encode_batch(self, x):
        self.calls += 1
        return x[:, 0].reshape(len(x), -1) @ self.W

    def _encode_text_batch(self, texts):
        self.calls += 1
        return torch.tensor([[len(t), t.count("a"), 0, 0, 0, 1.0] for t in texts])


@pytest.fixture
def digits():
    return load_digits_images(50)


def test_second_run_is_a_cache_hit_with_identical_rows(tmp_path, digits):
    store, enc = EmbeddingStore(tmp_path, shard_size=16), PixelEncoder()
    first = store.get_or_compute(enc, digits, batch_size=8, progress=False)
    assert not first.stats.cache_hit and first.stats.n_computed == 50 and first.stats.images_per_s > 0
    calls = enc.calls
    second = store.get_or_compute(enc, digits, progress=False)
    assert second.stats.cache_hit and "cache hit" in second.stats.summary()
    assert enc.calls == calls
    np.testing.assert_array_equal(second.as_array(), first.as_array())
    assert len(second.shards) == 4 and len(second) == 50


def test_stored_values_are_float16_of_the_encoder_output(tmp_path, digits):
    enc = PixelEncoder()
    cache = EmbeddingStore(tmp_path).get_or_compute(enc, digits, progress=False)
    expected = enc.encode_images([digits[i] for i in range(len(digits))])
    assert cache.as_array(dtype=None).dtype == np.float16
    np.testing.assert_allclose(cache.as_array(), expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(cache.labels, digits.labels)
    assert cache.ids == digits.ids and list(cache.indices) == list(range(50))


def test_iter_blocks_streams_all_rows_in_order_across_shards(tmp_path, digits):
    cache = EmbeddingStore(tmp_path, shard_size=16).get_or_compute(PixelEncoder(), digits, progress=False)
    starts, blocks = zip(*cache.iter_blocks(block_size=20), strict=True)
    assert starts == (0, 20, 40) and [len(b) for b in blocks] == [20, 20, 10]
    np.testing.assert_array_equal(np.concatenate(blocks), cache.as_array(dtype=np.float16))


def test_concept_search_streams_a_cache(tmp_path, digits):
    from cbm.kernels import concept_search

    cache = EmbeddingStore(tmp_path, shard_size=16).get_or_compute(PixelEncoder(), digits, progress=False)
    X = cache.as_array()
    query = torch.from_numpy(X[7])
    scores, idx = concept_search(cache, query, topk=3, block_size=10)
    assert int(idx[0]) == 7
    _, idx_array = concept_search(X, query, topk=3)
    assert idx.tolist() == idx_array.tolist()


def test_key_changes_with_encoder_and_data(tmp_path, digits):
    store = EmbeddingStore(tmp_path)
    assert store.key("a", "d") != store.key("b", "d") != store.key("a", "e")
    assert store.key("a", "d", size=96) != store.key("a", "d", size=224)
    assert store.path_for(PixelEncoder(), digits) != store.path_for(PixelEncoder(), digits.subset(range(10)))


def _interrupted(store, digits, batches: int):
    """Embed ``digits`` in batches of 8, stopped by Ctrl-C after ``batches`` batches; the entry's folder."""
    class Crashing(PixelEncoder):
        def _encode_batch(self, x):
            if self.calls == batches:
                raise KeyboardInterrupt
            return super()._encode_batch(x)

    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute(Crashing(), digits, batch_size=8, progress=False)
    return store.path_for(PixelEncoder(), digits)


def test_interrupted_run_resumes_from_finished_shards(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    path = _interrupted(store, digits, batches=3)
    assert not (path / "manifest.json").exists()
    assert sorted(p.name for p in path.glob("shard-*")) == ["shard-00000.json", "shard-00000.npy"]
    assert not list(path.glob(".*.tmp"))  # no half-written file is left behind
    cache = store.get_or_compute(PixelEncoder(), digits, batch_size=8, progress=False)
    assert cache.stats.resumed_shards == 1 and cache.stats.n_computed == 34 and len(cache) == 50


def test_parallel_workers_fill_disjoint_shards(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    assert store.get_or_compute(PixelEncoder(), digits, worker=(0, 2), progress=False) is None
    cache = store.get_or_compute(PixelEncoder(), digits, worker=(1, 2), progress=False)
    assert len(cache) == 50 and cache.stats.n_computed == 50 - 32


def test_truncated_shard_is_named_with_the_remedy(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    cache = store.get_or_compute(PixelEncoder(), digits, progress=False)
    shard = cache.path / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CacheError, match=r"shard-00001\.npy.*truncated.*force=True"):
        store.get_or_compute(PixelEncoder(), digits, progress=False)
    again = store.get_or_compute(PixelEncoder(), digits, force=True, progress=False)
    assert len(again) == 50 and not again.stats.cache_hit


def test_corrupt_shard_same_size_fails_the_hash_check(tmp_path, digits):
    cache = EmbeddingStore(tmp_path).get_or_compute(PixelEncoder(), digits, progress=False)
    shard = cache.path / "shard-00000.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="sha256"):
        EmbeddingCache(cache.path)
    assert len(EmbeddingCache(cache.path, verify="size")) == 50


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        (tmp_path / "img" / "x").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), color=40 * i).save(tmp_path / "img" / "x" / name)
    (tmp_path / "img" / "x" / "broken.jpg").write_bytes(b"not an image")
    ds = image_folder(tmp_path / "img")
    with pytest.warns(UserWarning, match=r"Skipped 1 of 4.*broken\.jpg"):
        cache = EmbeddingStore(tmp_path / "c").get_or_compute(PixelEncoder(), ds, progress=False)
    assert len(cache) == 3 and cache.stats.n_skipped == 1 and "skipped 1" in cache.stats.summary()
    assert cache.skipped[0]["id"] == "x/broken.jpg"
    assert "broken.jpg" not in cache.ids


def test_all_unreadable_and_empty_datasets_are_errors(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "bad.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"None of the 1 images.*bad\.png"):
        EmbeddingStore(tmp_path / "c").get_or_compute(PixelEncoder(), image_folder(tmp_path), progress=False)
    assert not list((tmp_path / "c" / "embeddings").iterdir())  # nothing half-made is kept
    empty = ImageDataset(images=np.zeros((0, 8, 8), np.uint8), name="none")
    with pytest.raises(DataError, match="'none' is empty"):
        EmbeddingStore(tmp_path / "c").get_or_compute(PixelEncoder(), empty, progress=False)


def test_manifest_lists_shards_with_rows_and_hashes(tmp_path, digits):
    cache = EmbeddingStore(tmp_path, shard_size=32).get_or_compute(PixelEncoder(), digits, progress=False)
    manifest = json.loads((cache.path / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [32, 18]
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    assert manifest["encoder"] == "pixels|v1" and manifest["dataset"] == digits.fingerprint


def test_embed_texts_is_computed_once_and_keyed_by_texts(tmp_path):
    enc = PixelEncoder()
    a = embed_texts(enc, ["stripes", "banana"], tmp_path)
    calls = enc.calls
    b = embed_texts(enc, ["stripes", "banana"], tmp_path)
    assert enc.calls == calls
    np.testing.assert_array_equal(a, b)
    c = embed_texts(enc, ["stripes", "apple"], tmp_path)
    assert enc.calls > calls and not np.array_equal(a, c)


# -- integrity at low cost: same-size corruption is found by default --------------------------------
def _flip_last_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_same_size_corruption_is_found_by_the_default_open(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    cache = store.get_or_compute(PixelEncoder(), digits, progress=False)
    _flip_last_byte(cache.path / "shard-00002.npy")
    with pytest.raises(CacheError, match=r"shard-00002\.npy' does not match its recorded sha256 .*same size"
                                         r".*Delete .*force=True \(cbm embed --force\)"):
        store.get_or_compute(PixelEncoder(), digits, progress=False)
    with pytest.raises(CacheError, match="sha256"):
        EmbeddingCache(cache.path)  # what `cbm train --data CACHE_DIR` opens


def test_verified_files_are_not_hashed_again_until_they_change(tmp_path, digits, monkeypatch):
    import cbm.store as store_mod

    monkeypatch.setattr(store_mod, "RACY_SECONDS", 0.0)
    cache = EmbeddingStore(tmp_path, shard_size=16).get_or_compute(PixelEncoder(), digits, progress=False)
    EmbeddingCache(cache.path)  # first open hashes and stamps
    stamp = json.loads((cache.path / "verified.json").read_text())
    assert sorted(stamp) == ["rows.npz", "shard-00000.npy", "shard-00001.npy", "shard-00002.npy",
                             "shard-00003.npy"]
    hashed = []
    monkeypatch.setattr(store_mod, "sha256_file", lambda p: hashed.append(p.name) or "x")
    store_mod._VERIFIED.clear()  # as in a new process: the stamp alone vouches for the files
    EmbeddingCache(cache.path)
    assert hashed == []
    (cache.path / "shard-00001.npy").write_bytes((cache.path / "shard-00001.npy").read_bytes())
    with pytest.raises(CacheError, match="shard-00001"):  # rewritten: hashed again ("x" != record)
        EmbeddingCache(cache.path)
    assert hashed == ["shard-00001.npy"]


def test_a_resumed_run_recomputes_a_corrupt_finished_shard(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    path = _interrupted(store, digits, batches=4)
    assert (path / "shard-00001.json").is_file()
    _flip_last_byte(path / "shard-00001.npy")
    with pytest.warns(UserWarning, match=r"shard-00001\.npy' from an earlier run is truncated or corrupt"):
        cache = store.get_or_compute(PixelEncoder(), digits, batch_size=8, progress=False)
    assert cache.stats.resumed_shards == 1 and cache.stats.n_computed == 34
    clean = EmbeddingStore(tmp_path / "clean", shard_size=16).get_or_compute(
        PixelEncoder(), digits, progress=False)
    np.testing.assert_array_equal(cache.as_array(), clean.as_array())
    EmbeddingCache(cache.path, verify=True)


def test_bombs_are_skipped_and_counted_never_abort(tmp_path, write_png_bomb):
    (tmp_path / "img" / "x").mkdir(parents=True)
    for i in range(3):
        Image.new("L", (8, 8), color=40 * i).save(tmp_path / "img" / "x" / f"{i}.png")
    write_png_bomb(tmp_path / "img" / "x" / "bomb.png")
    Image.new("L", (120, 100)).save(tmp_path / "img" / "x" / "big.png")
    ds = image_folder(tmp_path / "img")
    ds.max_pixels = 10_000
    with pytest.warns(UserWarning, match=r"Skipped 2 of 5"):
        cache = EmbeddingStore(tmp_path / "c").get_or_compute(PixelEncoder(), ds, progress=False)
    assert len(cache) == 3 and cache.stats.n_skipped == 2
    reasons = {s["id"]: s["reason"] for s in cache.skipped}
    assert "400,000,000 pixels, over the 10,000-pixel limit" in reasons["x/bomb.png"]
    assert "120 x 100 = 12,000 pixels, over the 10,000-pixel limit" in reasons["x/big.png"]


def test_images_are_reduced_to_model_size_one_at_a_time(tmp_path):
    """Peak memory is one decoded image plus a batch of model-sized tensors, whatever the batch size."""
    import weakref

    alive: list = []

    class Big(ImageDataset):
        def __getitem__(self, i):
            img = Image.new("RGB", (400, 300), (i, i, i))
            alive.append(weakref.ref(img))
            return img

    class Counting(PixelEncoder):
        most = 0

        def preprocess(self, image):
            Counting.most = max(Counting.most, sum(r() is not None for r in alive))
            return super().preprocess(image)

    ds = Big(images=np.zeros((12, 2, 2), np.uint8), name="big")
    cache = EmbeddingStore(tmp_path).get_or_compute(Counting(), ds, batch_size=12, progress=False)
    assert len(cache) == 12 and Counting.most == 1

class PatchEncoder(PixelEncoder):
    """PixelEncoder with 2 x 2 patch tokens of 3 values (means of the 4x4 pixel quadrants)."""

    def _encode_tokens_batch(self, x):
        q = x[:, 0].reshape(len(x), 2, 4, 2, 4).mean((2, 4)).reshape(len(x), 4, 1)
        return q * torch.tensor([1.0, -1.0, 2.0])


def test_token_entries_are_cached_beside_embeddings_as_n_t_d_float16(tmp_path, digits):
    store, enc = EmbeddingStore(tmp_path, shard_size=16), PatchEncoder()
    pooled = store.get_or_compute(enc, digits, progress=False)
    first = store.get_or_compute(enc, digits, kind="tokens", progress=False)
    assert first.path != pooled.path and first.kind == "tokens" and pooled.kind == "embeddings"
    assert first.token_grid == (2, 2) and pooled.token_grid is None
    T = first.as_array()
    assert T.shape == (50, 4, 3) and first.shards[0].dtype == np.float16 and len(first.shards) == 4
    np.testing.assert_array_equal(T, enc.encode_tokens(list(digits)).astype(np.float16).astype(np.float32))
    again = store.get_or_compute(enc, digits, kind="tokens", progress=False)
    assert again.stats.cache_hit
    np.testing.assert_array_equal(again.as_array(), T)
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["kind"] == "tokens" and manifest["token_grid"] == [2, 2]


def test_token_shards_keep_the_integrity_checks(tmp_path, digits):
    store = EmbeddingStore(tmp_path, shard_size=16)
    cache = store.get_or_compute(PatchEncoder(), digits, kind="tokens", progress=False)
    shard = cache.path / "shard-00001.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="shard-00001.npy"):
        store.get_or_compute(PatchEncoder(), digits, kind="tokens", progress=False)
    with pytest.raises(ValueError, match="kind must be"):
        store.get_or_compute(PatchEncoder(), digits, kind="patches", progress=False)
