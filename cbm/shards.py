"""One shard of an embedding-cache entry: the plan, the work that fills it, and what a run reports.

Shared by the local engine (:class:`cbm.store.EmbeddingStore`) and the Ray engine
(:mod:`cbm.distributed`), so neither imports the other to do its work. A shard is a
contiguous run of dataset rows, embedded and written atomically (``shard-00000.npy``, then its
``shard-00000.json`` record); shards are independent, so any number of workers may fill disjoint ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import atomic_path, atomic_write_json, sha256_file
from cbm.exceptions import DataError


@dataclass
class EmbedStats:
    """What one ``get_or_compute`` call did (``images_per_s`` counts images embedded in this run)."""

    n_images: int
    n_embedded: int
    n_skipped: int
    dim: int
    seconds: float
    cache_hit: bool
    path: Path
    n_computed: int = 0
    resumed_shards: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Throughput of this call: images embedded (not loaded from cache) per second."""
        return self.n_computed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """A few human-readable lines for the CLI and logs."""
        if self.cache_hit:
            head = f"cache hit: {self.n_embedded} embeddings (dim {self.dim}) loaded in {self.seconds:.2f} s"
        else:
            head = (f"embedded {self.n_embedded} of {self.n_images} images (dim {self.dim}) in "
                    f"{self.seconds:.1f} s, {self.images_per_s:.1f} images/s"
                    + (f", {self.resumed_shards} shard(s) resumed" if self.resumed_shards else ""))
        lines = [head]
        if self.n_skipped:
            lines.append(f"skipped {self.n_skipped} unreadable image(s), e.g. {self.skipped[0]['reason']}")
        lines.append(f"cache: {self.path}")
        return "\n".join(lines)


@dataclass
class ShardPlan:
    """One entry being written: its folder, the encoder to compute with, and its shards.

    Shard ``s`` holds dataset rows ``rows(s)``. Shards are independent, so any number of workers
    (processes with ``worker=(i, n)``, Ray actors) may fill disjoint ones; the manifest is written
    once all are done. Made by :meth:`EmbeddingStore.plan`.
    """

    path: Path
    encoder: Any
    info: dict[str, Any]
    n_images: int
    shard_size: int

    @property
    def complete(self) -> bool:
        """Whether the manifest is written (every shard done, the entry readable)."""
        return (self.path / "manifest.json").is_file()

    @property
    def n_shards(self) -> int:
        return -(-self.n_images // self.shard_size)

    def rows(self, s: int) -> range:
        """Dataset rows of shard ``s``."""
        return range(s * self.shard_size, min(self.n_images, (s + 1) * self.shard_size))


def compute_shard(plan: ShardPlan, s: int, dataset: Any, batch_size: int = 64, bar: Any = None) -> int:
    """Embed the rows of shard ``s`` and write it atomically (``.npy``, then its ``.json``
    record); returns the number of images kept. The unit of work of every engine."""
    path, rows, encoder = plan.path, plan.rows(s), plan.encoder
    feats, kept, skipped = [], [], []
    reduce = _reducer(encoder)
    for b in range(rows.start, rows.stop, batch_size):
        items, idx = [], []
        for i in range(b, min(rows.stop, b + batch_size)):
            try:  # reduced to model size at once: only one full-size image is ever decoded
                items.append(reduce(_image_of(dataset[i])))
                idx.append(i)
            except DataError as e:
                skipped.append({"index": i, "reason": str(e).split("; ")[0]})
        if items:
            batch = _stack(items) if reduce is not _identity else items
            del items
            feats.append(np.asarray(encoder.encode_images(batch, batch_size=batch_size), np.float16))
            kept += idx
        if bar is not None:
            bar.update(min(rows.stop, b + batch_size) - b)
    row_shape = getattr(encoder, "row_shape", (int(encoder.dim),))
    arr = np.concatenate(feats) if feats else np.zeros((0, *row_shape), np.float16)
    npy = path / f"shard-{s:05d}.npy"
    with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)
    digest = sha256_file(npy)
    atomic_write_json(path / f"shard-{s:05d}.json", {
        "file": npy.name, "rows": len(arr), "bytes": npy.stat().st_size, "sha256": digest,
        "index": kept, "skipped": skipped})
    return len(kept)


def _image_of(item: Any) -> Any:
    return item[0] if isinstance(item, tuple) else item


def _identity(image: Any) -> Any:
    return image


def _reducer(encoder: Any) -> Any:
    """Per-image preprocessing to a model-sized tensor when the encoder offers it (cbm encoders)."""
    preprocess = getattr(encoder, "preprocess", None)
    if preprocess is None or not getattr(encoder, "supports_images", False):
        return _identity
    from cbm._images import to_rgb

    return lambda image: preprocess(to_rgb(image))


def _stack(tensors: list[Any]) -> Any:
    import torch

    return torch.stack(tensors)


def dataset_id(dataset: Any, i: int) -> str:
    """The id of dataset row ``i`` (its ``ids`` entry, else the row number)."""
    ids = getattr(dataset, "ids", None)
    return str(ids[i]) if ids is not None else str(i)


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """One tqdm bar over ``total`` images (all shards, all workers)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled or total == 0, unit="img", desc=f"embed {desc}",
                dynamic_ncols=True, leave=False)
