"""Shared helpers for benchmark scripts: timing, peak memory, machine info and JSON results.

Every ``benchmarks/bench_*.py`` script measures providers side by side in one run and writes one
JSON file into ``benchmarks/results/``. Use::

    from _harness import compare, timeit, peak_rss_mb, run_isolated, write_result

    t = timeit(lambda: f(x), repeat=5, warmup=1)          # median seconds
    ts = compare({"eager": f, "ours": g}, repeat=5)       # interleaved medians per provider
    write_result("kernels_cpu", {"concept_scores": {...}})  # adds machine, versions, date

Scripts import it as a sibling module (``sys.path`` holds the script's folder when run directly).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _sync() -> None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except ImportError:  # pragma: no cover - torch is a hard dependency of cbmkit
        pass


def timeit(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs.

    CUDA work is synchronised before and after each run, so GPU timings are honest too.
    """
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(fns: dict[str, Callable[[], Any]], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds per provider, runs interleaved (a, b, c, a, b, c, ...).

    On a shared machine, load changes over seconds; interleaving exposes every provider to the same
    load, so the ratios stay meaningful even when absolute times drift.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            _sync()
            t0 = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` from /proc/self/status. ``resource.getrusage``'s ``ru_maxrss`` is not used
    there because exec keeps the forked parent's peak, so a child of a big process would report
    the parent's memory. Elsewhere: ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def run_isolated(code: str, timeout: float = 1800.0, env: dict[str, str] | None = None) -> dict:
    """Run Python ``code`` in a fresh interpreter and return the JSON it prints on its last line.

    Use it to measure peak memory of one provider without the others' allocations: end ``code``
    with ``print(json.dumps({..., "peak_rss_mb": peak_rss_mb()}))``. The benchmarks folder is on
    ``sys.path`` inside, so ``from _harness import peak_rss_mb`` works.
    """
    prelude = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True, text=True, timeout=timeout, env=full_env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"isolated benchmark run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    """CPU/GPU description and library versions, stored with every result."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    except ImportError:  # pragma: no cover
        pass
    for mod in ("numpy", "triton", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional packages; absence is information
            info[mod] = None
    return info


def write_result(name: str, payload: dict[str, Any], quick: bool | None = None) -> Path:
    """Write ``payload`` plus machine info, versions and date to ``benchmarks/results/<name>.json``
    (``<name>_quick.json`` for ``--quick`` runs, so they never overwrite a full run's results)."""
    if quick and not name.endswith("_quick"):
        name += "_quick"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **({"quick": quick} if quick is not None else {}),
        "results": payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def recorded_configs(path: Path) -> list[dict]:
    """The per-configuration results (``results.configs``) recorded in the results file ``path`` so
    far; [] before the first."""
    return json.loads(path.read_text())["results"].get("configs", []) if path.exists() else []


def is_recorded(path: Path, config: dict) -> bool:
    """Whether ``path`` holds a result, not an error, for this configuration (compared as JSON), so a
    rerun can skip it."""
    key = json.dumps(config, sort_keys=True)
    return any(json.dumps(c["config"], sort_keys=True) == key and "error" not in c for c in recorded_configs(path))


def record_config(path: Path, index: int, result: dict, write: Callable[[list[dict]], Any]) -> list[dict]:
    """Add the ``result`` of configuration ``index`` (stored in it as ``"index"``) to the results file
    ``path``: ``write(configs)`` gets the recorded ones, an earlier result for that index replaced,
    sorted by index; returns them. A lock beside ``path`` is held meanwhile, so parallel workers
    (``--only``) can share the file."""
    import fcntl

    result["index"] = index
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            done = [c for c in recorded_configs(path) if c.get("index") != index] + [result]
            done.sort(key=lambda c: c.get("index", 0))
            write(done)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return done
