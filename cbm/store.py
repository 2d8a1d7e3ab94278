"""EmbeddingStore: a content-addressed on-disk cache of image embeddings.

An entry is keyed by the encoder fingerprint (model, weights, preprocessing incl. resolution)
and the dataset fingerprint, so a second run over the same data is a cache hit::

    store = EmbeddingStore()                            # $CBM_CACHE_DIR or ~/.cache/cbmkit
    cache = store.get_or_compute(encoder, dataset, batch_size=64)
    print(cache.stats.summary())                        # n, skipped, dim, images/s, cache hit
    X = cache.as_array()                                # (N, d) float32
    for start, block in cache.iter_blocks(65536): ...   # streamed float16 blocks, in order
    cache.labels, cache.ids, cache.indices              # per stored row (unreadable images skipped)
    cache.domains, cache.splits                         # a manifest's site and split columns, when given

Layout of one entry ``<root>/embeddings/<encoder>-<key>/``: ``shard-00000.npy`` ... float16 shard
files, each written atomically (temp file + rename) and followed by a ``shard-00000.json`` record
(rows, bytes, sha256, skipped images); ``rows.npz`` with the row metadata; ``manifest.json``
(written last) listing the shards in order. Interrupted runs keep finished shards and resume;
``worker=(i, n)`` lets n processes fill disjoint shards in parallel. A corrupt or truncated
shard raises :class:`~cbm.exceptions.CacheError` naming the file; ``force=True`` recomputes.

Integrity at low cost (``verify="auto"``, the default): every file's size is checked on each open,
and its sha256 the first time it is opened in its current state (size, mtime, ctime, inode);
a verified state is remembered in this process and stamped in ``verified.json``, so later opens
and later processes do not re-hash unchanged files, while any rewrite (even same-size) is
hashed again. Finished shards found by a resumed run are hashed before they are reused; a
corrupt one is recomputed with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import atomic_path, atomic_write_json, sha256_file
from cbm.exceptions import CacheError, DataError
from cbm.shards import EmbedStats, ShardPlan, compute_shard, dataset_id, progress_bar

FORMAT = "cbmkit-embeddings/1"
STAMP = "verified.json"

#: This process's verified files: (path, size, mtime_ns, ctime_ns, inode, device) -> sha256.
_VERIFIED: dict[tuple, str] = {}

#: Files changed more recently than this are always hashed (see :func:`_remember`).
RACY_SECONDS = 2.0


def default_cache_dir() -> Path:
    """``$CBM_CACHE_DIR``, else ``~/.cache/cbmkit``."""
    return Path(os.environ.get("CBM_CACHE_DIR") or Path.home() / ".cache" / "cbmkit").expanduser()


def _state(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _remember(path: Path, sha256: str, stamp: dict[str, Any] | None = None) -> bool:
    """Record that ``path`` in its current state has ``sha256`` (in this process and ``stamp``).

    A file changed less than :data:`RACY_SECONDS` ago is not recorded: file times are coarse
    (a few ms), so a same-size rewrite within the same tick would keep the recorded state.
    """
    state = _state(path)
    if time.time_ns() - max(state[2], state[3]) < RACY_SECONDS * 1e9:
        return False
    _VERIFIED[state] = sha256
    if stamp is not None:
        stamp[path.name] = {"sha256": sha256, "state": list(state[1:])}
    return True


def _known_sha256(path: Path, stamp: dict[str, Any]) -> str | None:
    """The sha256 of ``path`` if it was verified before in its current state, else None."""
    state = _state(path)
    if state in _VERIFIED:
        return _VERIFIED[state]
    rec = stamp.get(path.name)
    if isinstance(rec, dict) and rec.get("state") == list(state[1:]):
        return rec.get("sha256")
    return None


def _read_stamp(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / STAMP).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no stamp (or a damaged one): files are simply hashed again


def _write_stamp(folder: Path, stamp: dict[str, Any]) -> None:
    try:
        atomic_write_json(folder / STAMP, stamp)
    except OSError:
        pass  # a read-only cache is verified again next time, nothing more


def _read_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CacheError(f"Cache file {str(path)!r} is unreadable ({e}); delete it or re-run with "
                         "force=True (cbm embed --force) to recompute.") from None


class EmbeddingCache:
    """Read side of one complete entry: shards are memory-mapped, verified on open.

    Parameters
    ----------
    path : path
        The entry folder (holding ``manifest.json``).
    verify : {"auto", True, "size", False}
        "auto" (default) checks sizes and the sha256 of every file not verified before in its
        current state (see the module docstring); True hashes every file; "size" only sizes;
        False nothing.
    """

    def __init__(self, path: str | Path, verify: bool | str = "auto") -> None:
        if verify not in ("auto", "size", True, False):
            raise ValueError(f"verify must be 'auto', True, 'size' or False; got {verify!r}.")
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise CacheError(f"No complete embedding cache at {str(self.path)!r} (manifest.json missing); "
                             "compute it with EmbeddingStore.get_or_compute or `cbm embed`.")
        self.manifest = _read_record(manifest)
        if self.manifest.get("format") != FORMAT:
            raise CacheError(f"{str(manifest)!r} has format {self.manifest.get('format')!r}, expected "
                             f"{FORMAT!r}; delete the folder or re-run with force=True.")
        self.dim = int(self.manifest["dim"])
        self.stats: EmbedStats | None = None
        if verify:
            self.verify(hashes={"auto": "auto", "size": False, True: True}[verify])
        self._shards: list[np.ndarray] | None = None
        self._rows: dict[str, np.ndarray] | None = None

    def verify(self, hashes: bool | str = True) -> None:
        """Raise CacheError naming the first file whose size (or sha256) is not as recorded.

        ``hashes``: True hashes every file, "auto" only those not verified before in their
        current state, False checks sizes only.
        """
        stamp = _read_stamp(self.path) if hashes == "auto" else {}
        fresh = False
        for rec in [*self.manifest["shards"], self.manifest["rows"]]:
            f = self.path / rec["file"]
            problem = None
            if not f.is_file():
                problem = "is missing"
            elif f.stat().st_size != rec["bytes"]:
                problem = f"has {f.stat().st_size} bytes, expected {rec['bytes']} (truncated?)"
            elif hashes and (hashes is True or _known_sha256(f, stamp) != rec["sha256"]):
                if sha256_file(f) != rec["sha256"]:
                    problem = "does not match its recorded sha256 (corrupt: same size, other bytes)"
                else:
                    fresh = _remember(f, rec["sha256"], stamp) or fresh
            if problem:
                raise CacheError(f"Embedding cache file {str(f)!r} {problem}. Delete {str(self.path)!r} "
                                 "or re-run with force=True (cbm embed --force) to recompute.")
        if fresh and hashes == "auto":
            _write_stamp(self.path, stamp)

    def __len__(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def kind(self) -> str:
        """"embeddings" (rows of (d,)) or "tokens" (rows of (T, d) patch tokens)."""
        return str(self.manifest.get("kind", "embeddings"))

    @property
    def token_grid(self) -> tuple[int, int] | None:
        """(h, w) of a token entry (h * w = T), None for pooled embeddings."""
        grid = self.manifest.get("token_grid")
        return None if grid is None else (int(grid[0]), int(grid[1]))

    @property
    def shards(self) -> list[np.ndarray]:
        """The (rows, d) float16 shard arrays, memory-mapped, in order."""
        if self._shards is None:
            self._shards = [np.load(self.path / r["file"], mmap_mode="r") for r in self.manifest["shards"]]
        return self._shards

    def iter_blocks(self, block_size: int = 65536, dtype: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, block)`` with consecutive (<= block_size, d) blocks, in row order,
        reading shard by shard (memory: one block). The protocol ``cbm.kernels.concept_search`` streams."""
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {block_size}.")
        buf: list[np.ndarray] = []
        have = start_row = 0
        for shard in self.shards:
            pos = 0
            while pos < len(shard):
                take = min(block_size - have, len(shard) - pos)
                buf.append(shard[pos : pos + take])
                have, pos = have + take, pos + take
                if have == block_size:
                    yield start_row, self._join(buf, dtype)
                    buf, have, start_row = [], 0, start_row + block_size
        if have:
            yield start_row, self._join(buf, dtype)

    @staticmethod
    def _join(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.asarray(out, dtype=dtype) if dtype is not None else out

    def as_array(self, dtype: Any = np.float32) -> np.ndarray:
        """All rows as one (N, d) array; ``dtype=None`` with a single shard returns the memmap."""
        if dtype is None and len(self.shards) == 1:
            return self.shards[0]
        if not self.shards:
            return np.zeros((0, self.dim), dtype=dtype or np.float16)
        return np.concatenate([np.asarray(s, dtype=dtype) for s in self.shards])

    load = as_array

    def _row(self, key: str) -> np.ndarray | None:
        if self._rows is None:
            with np.load(self.path / self.manifest["rows"]["file"], allow_pickle=False) as z:
                self._rows = {k: z[k] for k in z.files}
        return self._rows.get(key)

    @property
    def indices(self) -> np.ndarray:
        """Dataset row index of each stored embedding (skipped images leave gaps)."""
        return self._row("index")

    @property
    def labels(self) -> np.ndarray | None:
        """Class index per stored row, or None for unlabeled data."""
        return self._row("label")

    @property
    def ids(self) -> list[str]:
        return [str(s) for s in self._row("id")]

    @property
    def domains(self) -> list[str] | None:
        """Site (domain) per stored row, from a manifest's ``site``/``domain``/``group`` column, or None."""
        d = self._row("domain")
        return None if d is None else [str(s) for s in d]

    @property
    def splits(self) -> list[str] | None:
        """Split name per stored row, from a manifest's ``split`` column, or None."""
        d = self._row("split")
        return None if d is None else [str(s) for s in d]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("skipped", []))

    def search(self, query: Any, weights: Any = None, topk: int = 10, *, normalize: bool = True,
               block_size: int = 65536, engine: str = "local", address: str | None = None,
               workers: int | None = None) -> tuple[Any, Any]:
        """Top-``topk`` rows for a (weighted) concept query: :func:`cbm.kernels.concept_search`
        streamed here, or with ``engine="ray"`` over groups of shards on Ray (same answer)."""
        if engine == "ray":
            from cbm.distributed import search_on_ray

            return search_on_ray(self, query, weights, topk, normalize=normalize,
                                 block_size=block_size, workers=workers, address=address)
        if engine != "local":
            raise ValueError(f"engine must be 'local' or 'ray'; got {engine!r}.")
        from cbm.kernels import concept_search

        return concept_search(self, query, weights, topk, normalize=normalize, block_size=block_size)

    def top_scores(self, concepts: Any, k: int, *, per: str = "image", scale: float = 1.0,
                   bias: Any = None, normalize: bool = True, engine: str = "local",
                   address: str | None = None, workers: int | None = None) -> tuple[Any, Any]:
        """Top-``k`` :func:`cbm.kernels.concept_scores` per image ((N, k) values and concept
        indices) or per concept (``per="concept"``: (k, M) values and row indices), shard by shard;
        ``engine="ray"`` scores the shards on Ray (same answer)."""
        if engine == "ray":
            from cbm.distributed import scores_on_ray

            return scores_on_ray(self, concepts, k, per=per, scale=scale, bias=bias,
                                 normalize=normalize, workers=workers, address=address)
        if engine != "local":
            raise ValueError(f"engine must be 'local' or 'ray'; got {engine!r}.")
        if per not in ("image", "concept"):
            raise ValueError(f"per must be 'image' or 'concept'; got {per!r}.")
        import torch

        from cbm.kernels import concept_scores

        concepts = torch.as_tensor(np.asarray(concepts)) if not isinstance(concepts, torch.Tensor) \
            else concepts
        if per == "image":
            parts = [concept_scores(s, concepts, scale=scale, bias=bias, normalize=normalize, topk=k)
                     for s in self.shards]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        s = concept_scores(self.as_array(dtype=None), concepts, scale=scale, bias=bias,
                           normalize=normalize)
        return torch.topk(s, min(k, s.shape[0]), dim=0)

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, n={len(self)}, dim={self.dim})"


class EmbeddingStore:
    """Content-addressed cache of dataset embeddings under ``root/embeddings``.

    Parameters
    ----------
    root : path, optional
        Cache folder (default ``$CBM_CACHE_DIR`` or ``~/.cache/cbmkit``).
    shard_size : int
        Dataset rows per shard: the unit of atomic writes, resumption and parallel work.
    """

    def __init__(self, root: str | Path | None = None, shard_size: int = 4096) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.shard_size = int(shard_size)

    @staticmethod
    def key(encoder_fingerprint: str, dataset_fingerprint: str, **extra: Any) -> str:
        """Hex key of (encoder, dataset, extra preprocessing options)."""
        blob = json.dumps([encoder_fingerprint, dataset_fingerprint, extra], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def path_for(self, encoder: Any, dataset: Any) -> Path:
        """Folder of the entry for ``encoder`` over ``dataset``."""
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in getattr(encoder, "name", "encoder"))
        return self.root / "embeddings" / f"{name}-{self.key(encoder.fingerprint, _dataset_fp(dataset))}"

    def plan(self, encoder: Any, dataset: Any, *, force: bool = False,
             kind: str = "embeddings") -> ShardPlan:
        """Where the entry of ``encoder`` over ``dataset`` lives and how it is cut into shards.

        Creates the folder and its ``entry.json`` (a resumed entry keeps the shard size it was
        started with); ``force=True`` deletes the entry first. The plan's ``encoder`` is the one
        to compute with (the token view for ``kind="tokens"``).
        """
        if kind == "tokens":
            encoder = encoder.tokens()
        elif kind != "embeddings":
            raise ValueError(f"kind must be 'embeddings' or 'tokens'; got {kind!r}.")
        path = self.path_for(encoder, dataset)
        if force and path.exists():
            shutil.rmtree(path)
        if (path / "manifest.json").is_file():
            return ShardPlan(path, encoder, {}, len(dataset), self.shard_size)
        n = len(dataset)
        if n == 0:
            raise DataError(f"Dataset {getattr(dataset, 'name', '')!r} is empty; nothing to embed.")
        path.mkdir(parents=True, exist_ok=True)
        info = {"format": FORMAT, "encoder": encoder.fingerprint, "dataset": _dataset_fp(dataset),
                "n_images": n, "shard_size": self.shard_size, "dim": int(encoder.dim),
                "encoder_spec": getattr(encoder, "spec", None)}  # how to rebuild it (cbm explain --image)
        if kind == "tokens":
            info.update(kind="tokens", token_grid=list(encoder.token_grid))
        if (path / "entry.json").is_file():
            info["shard_size"] = _read_record(path / "entry.json")["shard_size"]  # resume as started
        else:
            atomic_write_json(path / "entry.json", info)
        return ShardPlan(path, encoder, info, n, int(info["shard_size"]))

    def get_or_compute(self, encoder: Any, dataset: Any, *, batch_size: int = 64, force: bool = False,
                       progress: bool = True, verify: bool | str = "auto",
                       worker: tuple[int, int] = (0, 1), kind: str = "embeddings",
                       engine: str = "local", address: str | None = None,
                       workers: int | None = None, cpus_per_worker: int = 1) -> EmbeddingCache | None:
        """Embeddings of ``dataset`` by ``encoder``, from the cache or computed (and cached).

        ``dataset`` needs ``len``, ``[i]`` (an image; :class:`~cbm.exceptions.DataError` marks
        an unreadable one, which is skipped and reported) and ``fingerprint``; ``labels``,
        ``ids``, ``domains`` (sites) and ``splits`` (split names) are kept when present. With ``worker=(i, n)`` this call fills every
        n-th shard and returns None unless all shards are then done. ``kind="tokens"`` caches the
        encoder's patch tokens, (N, T, d) float16 (``encoder.tokens()``), in an entry of their own.
        ``engine="ray"`` fills the shards with ``workers`` Ray actors of ``cpus_per_worker`` CPUs
        (on the cluster at ``address``, the one this process is connected to, or a local one; see
        :mod:`cbm.distributed`); the entry is the one a local run with as many torch threads
        writes, bit for bit.
        """
        if engine == "ray":
            if worker != (0, 1):
                raise ValueError("worker=(i, n) and engine='ray' exclude each other: Ray hands out "
                                 "the shards itself.")
            from cbm.distributed import embed_on_ray

            return embed_on_ray(self, encoder, dataset, batch_size=batch_size, force=force,
                                progress=progress, verify=verify, kind=kind, address=address,
                                workers=workers, cpus_per_worker=cpus_per_worker)
        if engine != "local":
            raise ValueError(f"engine must be 'local' or 'ray'; got {engine!r}.")
        t0 = time.perf_counter()
        plan = self.plan(encoder, dataset, force=force, kind=kind)
        if plan.complete:
            return self.cache_hit(plan, dataset, t0, verify)
        n, n_shards = len(dataset), plan.n_shards
        todo = [s for s in range(worker[0], n_shards, worker[1]) if not self.shard_done(plan, s)]
        resumed = len(range(worker[0], n_shards, worker[1])) - len(todo)
        done_imgs = 0
        bar = progress_bar(sum(len(plan.rows(s)) for s in todo), progress, plan.encoder.name)
        try:
            for s in todo:
                done_imgs += self.compute_shard(plan, s, dataset, batch_size, bar)
        finally:
            bar.close()
        if not all(s in todo or self.shard_done(plan, s) for s in range(n_shards)):
            return None
        cache = self.finalize(plan, dataset)
        skipped = cache.skipped
        if skipped:
            warnings.warn(f"Skipped {len(skipped)} of {n} images that could not be read, e.g. "
                          f"{skipped[0]['reason']}", stacklevel=2)
        cache.stats = EmbedStats(n, len(cache), len(skipped), cache.dim, time.perf_counter() - t0,
                                 False, plan.path, n_computed=done_imgs, resumed_shards=resumed,
                                 skipped=skipped)
        return cache

    @staticmethod
    def cache_hit(plan: ShardPlan, dataset: Any, t0: float, verify: bool | str = "auto") -> EmbeddingCache:
        """The complete entry of ``plan``, opened (``verify``), with the stats of a cache hit since ``t0``."""
        cache = EmbeddingCache(plan.path, verify=verify)
        cache.stats = EmbedStats(len(dataset), len(cache), len(cache.skipped), cache.dim,
                                 time.perf_counter() - t0, True, plan.path, skipped=cache.skipped)
        return cache

    @staticmethod
    def shard_done(plan: ShardPlan, s: int) -> bool:
        """Whether shard ``s`` of ``plan`` is finished and intact; a corrupt one is removed (and recomputed)."""
        rec, npy = plan.path / f"shard-{s:05d}.json", plan.path / f"shard-{s:05d}.npy"
        if not rec.is_file() or not npy.is_file():
            return False
        record = _read_record(rec)
        if record["bytes"] == npy.stat().st_size and (
                _known_sha256(npy, {}) == record["sha256"] or sha256_file(npy) == record["sha256"]):
            _remember(npy, record["sha256"])
            return True
        warnings.warn(f"Embedding cache shard {str(npy)!r} from an earlier run is truncated or corrupt "
                      "(size or sha256 differs from its record); it is recomputed.", stacklevel=3)
        npy.unlink(missing_ok=True)
        rec.unlink(missing_ok=True)
        return False

    #: embed the rows of one shard and write it (the unit of work of every engine; see cbm.shards)
    compute_shard = staticmethod(compute_shard)

    @staticmethod
    def finalize(plan: ShardPlan, dataset: Any) -> EmbeddingCache:
        """Write ``rows.npz`` and, last, ``manifest.json`` once every shard is done; the entry."""
        path, info, n_shards = plan.path, plan.info, plan.n_shards
        recs = [_read_record(path / f"shard-{s:05d}.json") for s in range(n_shards)]
        index = np.asarray([i for r in recs for i in r["index"]], dtype=np.int64)
        if not len(index):
            first = recs[0]["skipped"][0]["reason"] if recs[0]["skipped"] else "?"
            shutil.rmtree(path)
            raise DataError(f"None of the {info['n_images']} images could be read (e.g. {first}); "
                            "check the files and formats.")
        rows = {"index": index, "id": np.asarray([dataset_id(dataset, i) for i in index], dtype=str)}
        for key, attr in (("label", "labels"), ("domain", "domains"), ("split", "splits")):
            vals = getattr(dataset, attr, None)
            if vals is not None:
                rows[key] = np.asarray([vals[i] for i in index], dtype=np.int64 if key == "label" else str)
        rows_file = path / "rows.npz"
        with atomic_path(rows_file) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **rows)
        atomic_write_json(path / "manifest.json", {
            **info, "n_rows": int(len(index)), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "classes": list(getattr(dataset, "classes", []) or []),
            "shards": [{k: r[k] for k in ("file", "rows", "bytes", "sha256")} for r in recs],
            "rows": {"file": rows_file.name, "bytes": rows_file.stat().st_size, "sha256": sha256_file(rows_file)},
            "skipped": [dict(sk, id=dataset_id(dataset, sk["index"])) for r in recs for sk in r["skipped"]]})
        for orphan in path.glob(".shard-*.tmp"):  # left by a writer killed mid-shard (SIGKILL)
            orphan.unlink(missing_ok=True)
        return EmbeddingCache(path, verify=False)


def _dataset_fp(dataset: Any) -> str:
    fp = getattr(dataset, "fingerprint", None)
    if not isinstance(fp, str):
        raise TypeError(f"{type(dataset).__name__} has no 'fingerprint' string; wrap the images in "
                        "cbm.data.ImageDataset so the cache can be keyed by their content.")
    return fp


def embed_texts(encoder: Any, texts: Sequence[str], cache_dir: str | Path | None = None,
                batch_size: int = 256) -> np.ndarray:
    """Text embeddings (n, d) float32 of e.g. a concept bank, computed once and cached.

    Keyed by the encoder fingerprint and a hash of the texts; stored as float32 ``.npy`` with a
    sha256 record under ``<cache_dir>/texts/``. A damaged entry is reported and recomputed.
    """
    texts = [str(t) for t in texts]
    root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "texts"
    key = EmbeddingStore.key(encoder.fingerprint, hashlib.sha256("\0".join(texts).encode()).hexdigest())
    npy, rec = root / f"{key}.npy", root / f"{key}.json"
    if rec.is_file() and npy.is_file():
        meta = _read_record(rec)
        if meta.get("sha256") == sha256_file(npy):
            return np.load(npy)
        warnings.warn(f"Text embedding cache {str(npy)!r} is corrupt; recomputing it.", stacklevel=2)
    vecs = np.asarray(encoder.encode_text(texts, batch_size=batch_size), dtype=np.float32)
    with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vecs)
    atomic_write_json(rec, {"encoder": encoder.fingerprint, "n": len(texts), "sha256": sha256_file(npy)})
    return vecs
