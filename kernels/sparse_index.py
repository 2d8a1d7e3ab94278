"""Inverted index over the sparse concept activations of a trained sparse model.

A sparse bottleneck (Sparse-CBM, an elastic-net LF-CBM layer) activates few concepts per image, so
"which images express concept j" is answered by a posting list instead of a pass over the whole
store: the second path of :func:`concept_search`, for activations rather than raw embeddings.

Layout: compressed sparse columns. ``ptr[j]:ptr[j+1]`` slices ``rows``/``values`` to concept j's
postings, sorted by activation (highest first), so the top samples of one concept are a slice.
A weighted query (``+1``/``-1`` for "A and not B") scatters only the postings of its concepts.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SparseActivationIndex:
    """Posting lists of nonzero activations per concept. Use :meth:`build` rather than the constructor.

    Parameters
    ----------
    n_samples : int
        Number of indexed samples (rows of the activation matrix).
    ptr : Tensor (M + 1,) int64
        Offsets of each concept's postings in ``rows``/``values``.
    rows, values : Tensor (nnz,)
        Sample index and activation of each posting, highest activation first within a concept.
    """

    def __init__(self, n_samples: int, ptr: torch.Tensor, rows: torch.Tensor, values: torch.Tensor):
        self.n_samples = int(n_samples)
        self.ptr, self.rows, self.values = ptr, rows, values

    @classmethod
    def build(
        cls, activations: torch.Tensor | Iterable[tuple[int, torch.Tensor]], threshold: float = 0.0
    ) -> SparseActivationIndex:
        """Index activations with ``|a| > threshold`` from an (N, M) tensor, or from
        ``(start, block)`` pairs (e.g. a store's ``iter_blocks``) so N x M is never held densely."""
        blocks = [(0, activations)] if isinstance(activations, torch.Tensor) else activations
        rows, cols, vals, n, m = [], [], [], 0, None
        for start, block in blocks:
            block = torch.as_tensor(block)
            if block.ndim != 2 or (m is not None and block.shape[1] != m):
                raise ValueError(
                    f"activation block at row {start} has shape {tuple(block.shape)}; expected "
                    f"(rows, {m if m is not None else 'M'}) like the other blocks."
                )
            m = block.shape[1]
            r, c = torch.nonzero(block.abs() > threshold, as_tuple=True)
            rows.append(r + int(start))
            cols.append(c)
            vals.append(block[r, c].float())
            n = max(n, int(start) + block.shape[0])
        if m is None:
            raise ValueError("activations are empty; index at least one (rows, M) block.")
        rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
        # sort by concept, then by activation descending (stable two-key sort)
        order = torch.argsort(vals, descending=True, stable=True)
        order = order[torch.argsort(cols[order], stable=True)]
        counts = torch.bincount(cols, minlength=m)
        ptr = torch.zeros(m + 1, dtype=torch.int64)
        ptr[1:] = torch.cumsum(counts, 0)
        return cls(n, ptr, rows[order], vals[order])

    @property
    def n_concepts(self) -> int:
        """Number of concepts (columns) in the index."""
        return self.ptr.numel() - 1

    @property
    def density(self) -> float:
        """Fraction of (sample, concept) pairs that are indexed."""
        return self.values.numel() / max(1, self.n_samples * self.n_concepts)

    def postings(self, concept: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(activations, sample indices) of one concept, highest first."""
        if not 0 <= concept < self.n_concepts:
            raise IndexError(f"concept {concept} is out of range for {self.n_concepts} concepts.")
        lo, hi = int(self.ptr[concept]), int(self.ptr[concept + 1])
        return self.values[lo:hi], self.rows[lo:hi]

    def search(self, weights, topk: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """Top samples by ``sum_j weights[j] * a[:, j]``, touching only the queried postings.

        Parameters
        ----------
        weights : dict {concept index: weight} or Tensor (M,)
            ``{a: 1, b: -1}`` finds "A and not B".
        topk : int
            Number of samples returned (at most ``n_samples``).
        """
        if isinstance(weights, dict):
            items = list(weights.items())
        else:
            w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
            if w.numel() != self.n_concepts:
                raise ValueError(f"weights has {w.numel()} entries; the index has {self.n_concepts} concepts.")
            items = [(int(j), float(w[j])) for j in torch.nonzero(w).flatten()]
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive integer; got {topk!r}.")
        acc = torch.zeros(self.n_samples, dtype=torch.float32)
        for j, wj in items:
            vals, rows = self.postings(int(j))
            acc.index_add_(0, rows, vals * float(wj))
        return torch.topk(acc, min(topk, self.n_samples))
