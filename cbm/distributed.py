"""Past one machine: embedding extraction, concept scoring and concept search on a Ray cluster.

Same store, same results. :func:`embed_on_ray` starts Ray actors that each receive the encoder
once (through Ray's object store) and fill disjoint shards of the :class:`~cbm.store.EmbeddingStore`
entry a local run would write, shard by shard, as workers become free; the driver writes the
manifest once every shard is there. :func:`search_on_ray` and :func:`scores_on_ray` hand groups of
shards to Ray tasks that score them with :func:`cbm.kernels.concept_scores` (through
:func:`cbm.kernels.concept_search`), and merge the per-group top-k into the global answer::

    store.get_or_compute(encoder, dataset, engine="ray", workers=8)     # or: cbm embed ... --engine ray
    cache.search(query, weights, topk=10, engine="ray")                 # or: cbm concepts search ... --engine ray

Ray is optional (``pip install 'cbmkit[ray]'``). Every worker reads and writes the entry folder
itself, so on a cluster the store must be on a filesystem all nodes mount at the same path.
Connecting to a cluster (``address``, or ``$RAY_ADDRESS``) first checks that something answers at
its host:port within ``$CBM_RAY_TIMEOUT`` seconds (default 15), so a wrong address is one
:class:`~cbm.exceptions.ClusterUnreachableError` instead of Ray retrying for many minutes.
Failures: a shard is written atomically (temp file + rename, then its record), so a worker killed
mid-shard leaves no half shard. The other workers finish the remaining shards, then the run raises
:class:`~cbm.exceptions.WorkerLostError` naming the lost shards; a rerun computes only those.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from cbm.exceptions import ClusterUnreachableError, MissingDependencyError, WorkerLostError
from cbm.shards import EmbedStats, ShardPlan, compute_shard, progress_bar

if TYPE_CHECKING:
    from cbm.store import EmbeddingCache, EmbeddingStore

INSTALL_HINT = "pip install 'cbmkit[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`~cbm.exceptions.MissingDependencyError` saying how to get it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "engine 'ray' (--engine ray) needs Ray, which is not installed; install it with "
            f"`{INSTALL_HINT}`, or leave out --engine ray to run on this machine alone.") from None
    return ray


#: Seconds to wait for a Ray cluster's address to answer (``$CBM_RAY_TIMEOUT`` overrides).
DEFAULT_TIMEOUT = 15.0


def ray_timeout() -> float:
    """Seconds to wait for a Ray cluster to answer: ``$CBM_RAY_TIMEOUT``, default 15."""
    raw = os.environ.get("CBM_RAY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"CBM_RAY_TIMEOUT must be a number of seconds > 0; got {raw!r}. Unset it for "
                         f"the default ({DEFAULT_TIMEOUT:g} s).")
    return value


def check_ray_address(address: str | None = None, timeout: float | None = None) -> None:
    """Raise :class:`~cbm.exceptions.ClusterUnreachableError` when nothing answers at the Ray
    cluster ``address`` (or ``$RAY_ADDRESS``) within ``timeout`` seconds (default :func:`ray_timeout`).

    "auto", "local" and no address at all are left to Ray (they find or start a local cluster).
    """
    given = address or os.environ.get("RAY_ADDRESS") or ""
    host, sep, port = given.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    timeout = ray_timeout() if timeout is None else timeout
    where = "--address" if address else "$RAY_ADDRESS"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as e:
        reason = e.strerror or str(e)
    else:
        return
    raise ClusterUnreachableError(
        f"Cannot connect to the Ray cluster at {given!r} ({where}): {reason}. Start it (`ray start "
        "--head` prints the address), fix the address, or leave it out to run Ray on this machine; "
        "$CBM_RAY_TIMEOUT sets how many seconds to wait.")


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration of the block.

    Reuses the connection this process already has; else connects to the cluster at ``address``
    ("auto" or "ray://host:10001"; ``$RAY_ADDRESS`` when None), else starts a local one with
    ``num_cpus`` CPUs. What this function connected or started, it disconnects or stops after.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "logging_level": "ERROR"}
    if address or os.environ.get("RAY_ADDRESS"):
        check_ray_address(address)
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=num_cpus, **kw)
    try:
        yield ray
    finally:
        ray.shutdown()


class ShardWriter:
    """A Ray actor's state: the plan (with its encoder) and the dataset, received once.

    Torch runs ``threads`` threads: CPU convolutions round differently with other thread counts
    (one float16 step in about 0.5% of MobileNetV2's values between 1 and 2 threads), so the
    shards equal a local run's bit for bit when both use the same number.
    """

    def __init__(self, plan: ShardPlan, dataset: Any, batch_size: int, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.plan, self.dataset, self.batch_size = plan, dataset, batch_size

    def write(self, s: int) -> tuple[int, int]:
        """Compute and atomically write shard ``s``; (s, images kept)."""
        return s, compute_shard(self.plan, s, self.dataset, self.batch_size)

    def pid(self) -> int:
        """The worker's process id (what to kill to test failures)."""
        return os.getpid()


def _check_count(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _n_workers(ray: Any, workers: int | None, n_tasks: int, cpus: int = 1) -> int:
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
    return max(1, min(workers, n_tasks))


def embed_on_ray(store: EmbeddingStore, encoder: Any, dataset: Any, *, batch_size: int = 64,
                 force: bool = False, progress: bool = True, verify: bool | str = "auto",
                 kind: str = "embeddings", address: str | None = None,
                 workers: int | None = None, cpus_per_worker: int = 1) -> EmbeddingCache:
    """``store.get_or_compute(encoder, dataset, engine="ray")``: the entry, filled by Ray actors.

    ``workers`` actors (default: one per ``cpus_per_worker`` CPUs of the cluster, at most one per
    missing shard) each load the encoder once, run torch on ``cpus_per_worker`` threads, and take
    the next missing shard whenever they finish one. The manifest is written by this process
    once every shard is there. Raises
    :class:`~cbm.exceptions.WorkerLostError` when a worker died (the finished shards are kept).
    """
    _check_count("workers", workers)
    _check_count("cpus_per_worker", cpus_per_worker)
    t0 = time.perf_counter()
    plan = store.plan(encoder, dataset, force=force, kind=kind)
    if plan.complete:
        return store.cache_hit(plan, dataset, t0, verify)
    todo = [s for s in range(plan.n_shards) if not store.shard_done(plan, s)]
    resumed = plan.n_shards - len(todo)
    local_cpus = None if workers is None else workers * cpus_per_worker
    with ray_session(address, num_cpus=local_cpus) as ray:
        n = _n_workers(ray, workers, len(todo), cpus_per_worker)
        kept = _fill_shards(ray, plan, dataset, todo, batch_size, n, cpus_per_worker, progress)
    cache = store.finalize(plan, dataset)
    if cache.skipped:
        warnings.warn(f"Skipped {len(cache.skipped)} of {len(dataset)} images that could not be "
                      f"read, e.g. {cache.skipped[0]['reason']}", stacklevel=3)
    cache.stats = EmbedStats(len(dataset), len(cache), len(cache.skipped), cache.dim,
                             time.perf_counter() - t0, False, plan.path, n_computed=kept,
                             resumed_shards=resumed, skipped=cache.skipped)
    return cache


def _fill_shards(ray: Any, plan: ShardPlan, dataset: Any, todo: list[int], batch_size: int,
                 n_workers: int, cpus: int, progress: bool) -> int:
    """Run the shards ``todo`` on ``n_workers`` actors, one shard in flight each; images kept."""
    actor_cls = ray.remote(num_cpus=cpus, max_restarts=0)(ShardWriter)
    plan_ref, data_ref = ray.put(plan), ray.put(dataset)
    actors = [actor_cls.remote(plan_ref, data_ref, batch_size, cpus) for _ in range(n_workers)]
    queue, running = deque(todo), {}
    lost: list[int] = []
    error: BaseException | None = None
    kept = 0

    def submit(actor: Any) -> None:
        if queue and error is None:
            s = queue.popleft()
            running[actor.write.remote(s)] = (actor, s)

    bar = progress_bar(sum(len(plan.rows(s)) for s in todo), progress, plan.encoder.name)
    try:
        for actor in actors:
            submit(actor)
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, s = running.pop(ref)
            try:
                _, n = ray.get(ref)
            except ray.exceptions.RayActorError:
                lost.append(s)  # its actor is gone; the others carry on with the queue
                continue
            except ray.exceptions.RayTaskError as e:  # the shard's own error (e.g. an encoder bug)
                error = error or getattr(e, "cause", None) or e
                continue
            kept += n
            bar.update(len(plan.rows(s)))
            submit(actor)
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)
    if error is not None:
        raise error
    if lost or queue:
        left = sorted(lost + list(queue))
        raise WorkerLostError(
            f"Ray worker(s) died while writing shard(s) {_listing(lost)} of {str(plan.path)!r}"
            + (f"; {len(queue)} shard(s) were left with no worker" if queue else "")
            + f". The {plan.n_shards - len(left)} finished shards are kept (no half shard is ever "
            f"read); run the same command again to compute only the {len(left)} missing one(s).")
    return kept


def _listing(xs: Sequence[int], n: int = 8) -> str:
    return ", ".join(map(str, xs[:n])) + (f" ... ({len(xs)} in all)" if len(xs) > n else "")


def _shard_groups(cache: EmbeddingCache, n_groups: int) -> list[list[tuple[str, int]]]:
    """Contiguous groups of (shard file, first row), about equal in rows, in row order."""
    shards, start = [], 0
    for rec in cache.manifest["shards"]:
        shards.append((str(cache.path / rec["file"]), start, int(rec["rows"])))
        start += int(rec["rows"])
    per = max(1, -(-start // max(1, n_groups)))
    groups: list[list[tuple[str, int]]] = [[]]
    in_group = 0
    for f, first, rows in shards:
        if in_group >= per:
            groups.append([])
            in_group = 0
        groups[-1].append((f, first))
        in_group += rows
    return [g for g in groups if g]


def _load(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def search_shards(group: list[tuple[str, int]], query: Any, weights: Any, topk: int,
                  normalize: bool, block_size: int) -> tuple[Any, Any]:
    """One task: top-``topk`` rows of these shards for the query, as global row indices."""
    import torch

    from cbm.kernels import concept_search

    best_s, best_i = torch.empty(0), torch.empty(0, dtype=torch.int64)
    for path, first in group:
        s, i = concept_search(_load(path), query, weights, topk, normalize=normalize,
                              block_size=block_size)
        best_s, best_i = _merge(best_s, best_i, s, i + first, topk)
    return best_s, best_i


def _merge(best_s: Any, best_i: Any, s: Any, i: Any, topk: int, dim: int = 0) -> tuple[Any, Any]:
    """Top-``topk`` along ``dim`` of two candidate sets, earlier candidates first on ties."""
    import torch

    cand_s, cand_i = torch.cat([best_s, s], dim), torch.cat([best_i, i], dim)
    top, pos = torch.topk(cand_s, min(topk, cand_s.shape[dim]), dim=dim)
    return top, torch.gather(cand_i, dim, pos)


def search_on_ray(cache: EmbeddingCache, query: Any, weights: Any = None, topk: int = 10, *,
                  normalize: bool = True, block_size: int = 65536, workers: int | None = None,
                  address: str | None = None) -> tuple[Any, Any]:
    """:func:`cbm.kernels.concept_search` over ``cache`` with Ray tasks over groups of shards.

    Each task searches its shards with the kernel; the per-task top-k are merged in row order.
    Returns (scores (k,) float32, row indices (k,) int64), best first, as the local search does.
    """
    import torch

    _check_count("topk", topk)
    _check_count("workers", workers)
    with ray_session(address, num_cpus=workers) as ray:
        n = _n_workers(ray, workers, len(cache.manifest["shards"]))
        task = ray.remote(num_cpus=1)(search_shards)
        q = ray.put(torch.as_tensor(np.asarray(query)) if not isinstance(query, torch.Tensor) else query)
        refs = [task.remote(g, q, weights, topk, normalize, block_size)
                for g in _shard_groups(cache, 4 * n)]
        parts = ray.get(refs)
    best_s, best_i = torch.empty(0), torch.empty(0, dtype=torch.int64)
    for s, i in parts:
        best_s, best_i = _merge(best_s, best_i, s, i, topk)
    return best_s, best_i


def score_shards(group: list[tuple[str, int]], concepts: Any, k: int, per: str, scale: float,
                 bias: Any, normalize: bool) -> tuple[Any, Any]:
    """One task: per-image top-k concepts, or per-concept top-k rows, of these shards."""
    import torch

    from cbm.kernels import concept_scores

    if per == "image":
        vals, idx = zip(*(concept_scores(_load(p), concepts, scale=scale, bias=bias,
                                         normalize=normalize, topk=k) for p, _ in group),
                        strict=True)
        return torch.cat(vals), torch.cat(idx)
    best_s = torch.empty(0, concepts.shape[0])
    best_i = torch.empty(0, concepts.shape[0], dtype=torch.int64)
    for path, first in group:
        s = concept_scores(_load(path), concepts, scale=scale, bias=bias, normalize=normalize)
        v, i = torch.topk(s, min(k, s.shape[0]), dim=0)
        best_s, best_i = _merge(best_s, best_i, v, i + first, k)
    return best_s, best_i


def scores_on_ray(cache: EmbeddingCache, concepts: Any, k: int, *, per: str = "image",
                  scale: float = 1.0, bias: Any = None, normalize: bool = True,
                  workers: int | None = None, address: str | None = None) -> tuple[Any, Any]:
    """Top-``k`` concept scores over the whole store, scored shard by shard on Ray.

    ``per="image"``: (values (N, k), concept indices (N, k)), as
    ``concept_scores(X, concepts, topk=k)``. ``per="concept"``: (values (k, M), row indices (k, M)),
    the ``k`` images that express each concept most, best first.
    """
    import torch

    if per not in ("image", "concept"):
        raise ValueError(f"per must be 'image' or 'concept'; got {per!r}.")
    concepts = torch.as_tensor(np.asarray(concepts)) if not isinstance(concepts, torch.Tensor) \
        else concepts
    _check_count("k", k)
    _check_count("workers", workers)
    with ray_session(address, num_cpus=workers) as ray:
        n = _n_workers(ray, workers, len(cache.manifest["shards"]))
        task = ray.remote(num_cpus=1)(score_shards)
        c = ray.put(concepts)
        parts = ray.get([task.remote(g, c, k, per, scale, bias, normalize)
                         for g in _shard_groups(cache, 4 * n)])
    if per == "image":
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    best_s, best_i = parts[0]
    for s, i in parts[1:]:
        best_s, best_i = _merge(best_s, best_i, s, i, k)
    return best_s, best_i
