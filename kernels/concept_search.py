"""Concept search: the samples of a (large, memmapped) embedding store that most express a query.

A query is one concept vector, several with weights (``+1`` / ``-1`` for "A and not B"), scored by
the weighted sum of cosine similarities. Because that sum is linear in the normalised concepts,
``sum_q w_q cos(x, c_q) = <x / |x|, sum_q w_q c_q / |c_q|>``, the query collapses to one vector and
search is one streaming pass: per block, score the rows with :func:`concept_scores` (Triton on CUDA)
and merge the block's top-k into a running top-k. Memory is one block, never N x M.

Stores: a torch tensor, a numpy array or ``np.memmap``, or any object with
``iter_blocks(block_size)`` yielding ``(start, block)`` (``cbm.EmbeddingStore``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ._utils import release_rows
from .concept_scores import EPS, concept_scores


def _iter_blocks(store, block_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    if hasattr(store, "iter_blocks"):
        for start, block in store.iter_blocks(block_size):
            yield int(start), _as_tensor(block)
            release_rows(block, 0, len(block))  # memmapped shard views: drop the read pages
        return
    if not hasattr(store, "shape") or len(store.shape) != 2:
        raise TypeError(
            "store must be a 2-D tensor/array (N, d) or an object with iter_blocks(block_size) "
            f"(e.g. cbm.EmbeddingStore); got {type(store).__name__}."
        )
    for start in range(0, store.shape[0], block_size):
        yield start, _as_tensor(store[start : start + block_size])
        release_rows(store, start, min(start + block_size, store.shape[0]))


def _as_tensor(block) -> torch.Tensor:
    if isinstance(block, torch.Tensor):
        return block
    arr = np.asarray(block)
    with warnings.catch_warnings():  # read-only memmaps: we never write to the block
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr) if arr.dtype.kind == "f" else torch.from_numpy(arr).float()


def combine_query(query, weights=None, normalize: bool = True) -> torch.Tensor:
    """Collapse (q, d) concept vectors and weights (q,) into the single vector scored by search."""
    q = torch.as_tensor(np.asarray(query) if not isinstance(query, torch.Tensor) else query)
    q = q.double().reshape(1, -1) if q.ndim == 1 else q.double()
    if q.ndim != 2:
        raise ValueError(f"query must be (d,) or (q, d) concept vectors; got shape {tuple(q.shape)}.")
    if weights is None:
        w = torch.ones(q.shape[0], dtype=torch.float64)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if w.numel() != q.shape[0]:
            raise ValueError(
                f"weights has {w.numel()} entries but query has {q.shape[0]} concept vectors; "
                "give one weight per vector (+1 to want a concept, -1 to avoid it)."
            )
    if normalize:
        q = q / q.norm(dim=1, keepdim=True).clamp_min(EPS)
    return (w[:, None] * q).sum(0)


def concept_search(
    store_or_array,
    query,
    weights=None,
    topk: int = 10,
    *,
    normalize: bool = True,
    block_size: int = 65536,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``topk`` samples by (weighted) concept activation, streaming over the store in blocks.

    Parameters
    ----------
    store_or_array : array (N, d), Tensor, np.memmap or object with ``iter_blocks(block_size)``
        The embeddings to search; float16 or float32.
    query : Tensor (d,) or (q, d)
        One concept vector or several.
    weights : sequence of float (q,), optional
        Weight per concept vector; default all 1. ``[1, -1]`` finds "A and not B".
    topk : int
        How many samples to return (fewer if the store is smaller).
    normalize : bool
        Score cosine similarities (True) or raw dot products (False).
    block_size : int
        Rows scored at a time; bounds memory.
    device : str or torch.device, optional
        Where to score (e.g. "cuda" to run the Triton kernel on a CPU-side store).

    Returns
    -------
    (scores (k,) float32, indices (k,) int64), best first.
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive integer; got {topk!r}.")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}.")
    vec = combine_query(query, weights, normalize)
    dev = torch.device(device) if device is not None else None
    # <x/|x|, v> = |v| * cos(x, v): concept_scores normalises v, the scale restores its length.
    scale = float(vec.norm()) if normalize else 1.0
    best_s = torch.empty(0, dtype=torch.float32)
    best_i = torch.empty(0, dtype=torch.int64)
    for start, block in _iter_blocks(store_or_array, block_size):
        if block.ndim != 2 or block.shape[1] != vec.numel():
            raise ValueError(
                f"store block at row {start} has shape {tuple(block.shape)}; expected (rows, "
                f"{vec.numel()}) to match the query's embedding dimension."
            )
        if dev is not None:
            block = block.to(dev, non_blocking=True)
        concept = vec.to(device=block.device, dtype=torch.float32)[None]
        s = concept_scores(block, concept, scale=scale, normalize=normalize)[:, 0]
        k = min(topk, s.numel())
        bs, bi = torch.topk(s, k)
        cand_s = torch.cat([best_s, bs.cpu()])
        cand_i = torch.cat([best_i, bi.cpu() + start])
        k = min(topk, cand_s.numel())
        top, pos = torch.topk(cand_s, k)
        best_s, best_i = top, cand_i[pos]
    return best_s, best_i
