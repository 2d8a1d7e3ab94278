"""Stress test of one model directory: N processes x M edits with saves, all at once.

Each process loops M times: open an :class:`~cbm.edits.history.EditSession` (as each CLI call does),
apply one ``SetWeight`` on a class-concept cell no other edit touches, and every ``--save-every``
edits save a version. Then the script checks, from the files alone, that

* every applied edit is in ``history.json`` (count and seq numbers),
* every edit is marked saved in a version that holds it (its value is in that version's weights
  and its seq in that version's ``config.json["edits"]``), and the final version holds all edits,
* every save that reported a version number is a version, versions are numbered 2, 3, ... with
  each one's parent the one before, and no hidden temporary folder is left,

and reports timings (wall time, per-operation latency, edits per second). Writes
``benchmarks/results/concurrency.json`` (``concurrency_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import write_result  # noqa: E402

N_CLASSES = 5


def cell(worker: int, i: int, m: int) -> tuple[int, int]:
    """The (class, concept) cell of edit ``i`` of ``worker``: distinct for every edit."""
    k = worker * m + i
    return k % N_CLASSES, k // N_CLASSES


def value(worker: int, i: int) -> float:
    return float(1 + worker * 1000 + i)


def worker(path: str, w: int, m: int, save_every: int, n_concepts: int, start, out) -> None:
    from cbm.edits import SetWeight
    from cbm.edits.history import EditSession
    from cbm.exceptions import EditError

    start.wait()
    times = {"open": [], "apply": [], "save": []}
    saved, empty_saves = [], 0
    for i in range(m):
        t0 = time.perf_counter()
        s = EditSession(path)
        t1 = time.perf_counter()
        k, j = cell(w, i, m)
        s.apply(SetWeight(s.model.class_names_[k], s.model.concept_names_[j], value(w, i)), why=f"worker {w}")
        t2 = time.perf_counter()
        times["open"].append(t1 - t0)
        times["apply"].append(t2 - t1)
        if (i + 1) % save_every == 0:
            t0 = time.perf_counter()
            try:
                saved.append(s.save(f"worker {w} edit {i}"))
            except EditError as e:  # another process's save already took every pending edit
                if "nothing to save" not in str(e):
                    raise
                empty_saves += 1
            times["save"].append(time.perf_counter() - t0)
    out.put({"worker": w, "saved": saved, "empty_saves": empty_saves, "times": times})


def make_model_dir(root: Path, n_concepts: int) -> Path:
    import numpy as np

    from cbm.data import make_concept_world
    from cbm.io import save_model
    from cbm.models import create_model

    world = make_concept_world(n_classes=N_CLASSES, n_concepts=n_concepts, n_samples=200, dim=32, random_state=0)
    names = np.asarray(world.class_names)
    model = create_model("labo", concepts=world.bank, max_epochs=5, verbose=False)
    model.fit(world["train"].X, names[world["train"].y])
    path = root / "model"
    save_model(model, path, note="trained")
    return path


def verify(path: Path, n: int, m: int, n_concepts: int, reported: list[int]) -> dict:
    """Check the directory from its files; returns the counts (and raises on any loss)."""
    from cbm.edits.history import EditSession, read_history
    from cbm.io import list_versions, load_config, load_model

    log = read_history(path / "history.json")
    entries = log["entries"]
    pending_before_final = sum(e["status"] == "pending" for e in entries)
    final_version = EditSession(path).save("final: the last pending edits") if pending_before_final else None
    log = read_history(path / "history.json")
    entries = log["entries"]
    versions = list_versions(path)
    models = {v: load_model(path, v) for v in versions}
    in_log = {(e["edit"]["cls"], e["edit"]["concept"], e["edit"]["value"]) for e in entries}
    held = 0
    for e in entries:
        model, ed = models[e["version"]], e["edit"]
        ok = (e["status"] == "saved" and e["seq"] in load_config(path, e["version"])["edits"]["seqs"]
              and model.coef_[model.class_names_.index(ed["cls"]), model.concept_names_.index(ed["concept"])]
              == ed["value"])
        held += bool(ok)
    last = models[versions[-1]]
    in_final = sum(
        last.coef_[last.class_names_.index(c), last.concept_names_.index(j)] == v for c, j, v in in_log)
    parents_chain = all(load_config(path, v)["parent"] == p for p, v in zip(versions, versions[1:], strict=False))
    temp_left = [p.name for p in path.iterdir() if p.name.startswith(".v")]
    result = {
        "edits_applied": n * m,
        "edits_in_log": len(entries),
        "distinct_edits_in_log": len(in_log),
        "edits_saved_in_a_version_that_holds_them": held,
        "edits_in_final_version": int(in_final),
        "pending_before_final_save": pending_before_final,
        "saves_reported": len(reported),
        "saves_that_are_versions": len(set(reported) & set(versions)),
        "versions": len(versions),
        "final_save_version": final_version,
        "version_parents_form_a_chain": parents_chain,
        "temporary_folders_left": temp_left,
    }
    result["nothing_lost"] = bool(
        len(entries) == len(in_log) == held == in_final == n * m
        and len(set(reported)) == len(reported) == result["saves_that_are_versions"]
        and versions == list(range(1, len(versions) + 1)) and parents_chain and not temp_left
    )
    return result


def stats(xs: list[float]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    return {"n": len(xs), "median_ms": round(1000 * statistics.median(xs), 2),
            "p95_ms": round(1000 * xs[min(len(xs) - 1, int(0.95 * len(xs)))], 2),
            "max_ms": round(1000 * xs[-1], 2)}


def run(n: int, m: int, save_every: int, root: Path) -> dict:
    n_concepts = max(8, -(-n * m // N_CLASSES))
    path = make_model_dir(root, n_concepts)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["cbm.edits.history", "cbm.models", "cbm.models.labo"])
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(str(path), w, m, save_every, n_concepts, start, out))
             for w in range(n)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every worker reach the start line
    t0 = time.perf_counter()
    start.set()
    reports = [out.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(30)
        if p.exitcode != 0:
            raise SystemExit(f"worker {p.name} failed with exit code {p.exitcode}")
    reported = [v for r in reports for v in r["saved"]]
    times = {k: [t for r in reports for t in r["times"][k]] for k in ("open", "apply", "save")}
    return {
        "processes": n, "edits_per_process": m, "save_every": save_every, "concepts": n_concepts,
        "wall_s": round(wall, 3), "edits_per_s": round(n * m / wall, 2),
        "empty_saves": sum(r["empty_saves"] for r in reports),
        "latency": {k: stats(v) for k, v in times.items()},
        "check": verify(path, n, m, n_concepts, reported),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 processes x 8 edits (default 4 x 25 and 8 x 10)")
    args = ap.parse_args(argv)
    configs = [(3, 8, 2)] if args.quick else [(4, 25, 3), (8, 10, 2)]
    runs = []
    for n, m, every in configs:
        with tempfile.TemporaryDirectory(prefix="cbm-bench-concurrency-") as tmp:
            r = run(n, m, every, Path(tmp))
        print(f"{n} processes x {m} edits (save every {every}): {r['wall_s']:.1f} s, "
              f"{r['edits_per_s']:.1f} edits/s; {r['check']['edits_in_log']}/{n * m} edits in the log, "
              f"{r['check']['edits_saved_in_a_version_that_holds_them']} saved in a version, "
              f"{r['check']['saves_that_are_versions']}/{r['check']['saves_reported']} saves are versions; "
              f"nothing lost: {r['check']['nothing_lost']}")
        runs.append(r)
    payload = {"runs": runs, "nothing_lost": all(r["check"]["nothing_lost"] for r in runs)}
    print("wrote", write_result("concurrency", payload, quick=args.quick))
    return payload


if __name__ == "__main__":
    main()
