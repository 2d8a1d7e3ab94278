"""See the shortcut nobody named, and repair it, on the user's own data (issue 25).

Each configuration plays a user who brings their own images: Fashion-MNIST images with an artifact
this script stamps itself (a stripe across the bottom, a small ring off-centre, a plus "logo" at a
random place per image, a thin frame, a soft blob) on most images of one class at the training site
("siteA") and on none of that class but most others at a second site ("siteB"). Nothing about the
artifact reaches the model: the concept bank is the demo's garment bank *without* its artifact
concept, the per-image concept labels are the class prior and measurements of the images before
stamping (so no concept is measured from the artifact), and the true artifact flags are used only
to score. Per configuration, only through the public CLI and Python API:

1. images -> PNG folders + ``manifest.csv`` (path, label, split, site): train / val / test at siteA,
   test at siteB;
2. ``cbm embed manifest.csv`` (offline MobileNetV2), read back from its cache with the manifest's
   split and site columns;
3. KnoBo as ``cbm demo`` trains it (:func:`cbm.demo.pipeline.fit_knobo`, ``grounding_l2="auto"``)
   and the black box (``linear-probe``) on the same embeddings;
4. discover: :func:`cbm.edits.discover.discover_shortcuts` on the training split (training site only);
5. name it: the rank-1 candidate (never chosen by looking at the flags) becomes concept
   "discovered 1" (:meth:`AddConcept.from_examples`, weight 0 for every class), applied to the model;
6. repair: :func:`cbm.edits.repair.suggest_repairs` on the training site's validation split; the
   chosen edit (or none, when nothing beats "no edit" beyond the bootstrap noise) is applied to a copy;
7. score on every split, next to KnoBo trained the same way on the same images before stamping (the
   reference: the headroom), the black box, the black box given the same fix, and "never predict k"
   (:func:`cbm.edits.repair.compare_baselines`).

The configurations below were fixed before any result was seen and nothing is tuned to them.
The JSON (``results/own_data.json``; ``own_data_quick.json`` for ``--quick``) is rewritten after
every configuration, and a rerun skips configurations already recorded (``--redo`` recomputes).
Embeddings are cached by the content of the stamped images (``--root``/embeddings/<sha>.npz), so a
rerun after a library fix does not re-embed; the reference KnoBo is trained once per seed (the images
before stamping depend on the seed only).

    python benchmarks/bench_own_data.py --quick      # 2 small configurations, to debug
    python benchmarks/bench_own_data.py              # 12 configurations at cbm demo's default sizes
    python benchmarks/bench_own_data.py --small      # 12 configurations at the quick sizes
    python benchmarks/bench_own_data.py --table      # the recorded table and goals
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS_DIR, is_recorded, record_config, recorded_configs, write_result  # noqa: E402

NAME = "own_data"
DEFAULT_SIZES = {"n_train": 4000, "n_val": 1000, "n_test": 1000, "n_shifted": 2000, "image_size": 96}  # DemoConfig()
QUICK_SIZES = {"n_train": 800, "n_val": 200, "n_test": 200, "n_shifted": 400, "image_size": 64}
#: ``--small``: all 12 configurations at the quick sizes, into own_data.json (what fits a shared 2-core machine)
SMALL_SIZES = dict(QUICK_SIZES)
ENCODER = "mobilenet_v2"

# (artifact kind, confounded class k, P(artifact | k) at siteA, P(artifact | others) at siteA,
#  P(artifact | others) at siteB, seed); P(artifact | k) at siteB is 0 throughout. Fixed up front.
CONFIGS = [
    ("stripe", "Shirt", 0.90, 0.05, 0.7, 0),
    ("ring", "Bag", 0.85, 0.05, 0.6, 1),
    ("logo", "Sneaker", 0.95, 0.05, 0.8, 2),
    ("frame", "Coat", 0.80, 0.10, 0.5, 0),
    ("blob", "Trouser", 0.90, 0.05, 0.7, 1),
    ("stripe", "Coat", 0.75, 0.05, 0.6, 2),
    ("ring", "Shirt", 0.95, 0.10, 0.8, 0),
    ("logo", "Pullover", 0.85, 0.05, 0.7, 1),
    ("frame", "Bag", 0.90, 0.05, 0.6, 2),
    ("blob", "Shirt", 0.80, 0.05, 0.8, 0),
    ("stripe", "Sneaker", 0.70, 0.10, 0.5, 1),
    ("ring", "Pullover", 0.90, 0.05, 0.7, 2),
]
QUICK_CONFIGS = CONFIGS[:2]

ARTIFACTS = {
    "stripe": "a bright horizontal stripe, 2 px tall, across the whole bottom of the image",
    "ring": "a bright ring (radius 3 px, about 1.5 px thick) off-centre in the upper right",
    "logo": "a bright 5x5 px plus sign at a random position per image",
    "frame": "a thin (1 px) light-grey frame around the whole image",
    "blob": "a soft Gaussian light blob (sigma 2 px, peak +160) added in the lower left",
}

GOALS = {
    "discovery": "artifact among the top 3 candidates (first mostly-stamped candidate) with precision >= 0.8 "
                 "in >= 10 of 12 configurations",
    "no_harm": "shifted_after >= shifted_before - 1 point in 12 of 12",
    "repair_headroom": ">= 70% of the headroom recovered in >= 75% of the configurations with headroom >= 2 points",
    "repair_vs_black_box": "shifted_after above the black box + same fix in >= 10 of 12 (null: no edit chosen, "
                           "the same fix is not defined; counted as not above)",
    "timing": "discover + name + repair < 2 min per configuration at the default sizes (the slowest one)",
}
SPLITS = ("train", "val", "test", "shifted")
SITE = {"train": "siteA", "val": "siteA", "test": "siteA", "shifted": "siteB"}
MANIFEST_SPLIT = {"train": "train", "val": "val", "test": "test", "shifted": "test"}


# -- the artifacts (this benchmark's own stamping, not cbm.demo.confound) ---------------------------
def stamp(images: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``images`` (N, H, W) uint8 with artifact ``kind`` stamped where ``mask`` is true."""
    out = np.asarray(images, np.float32).copy()
    _, H, W = out.shape
    s = H / 28.0
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    idx = np.flatnonzero(mask)
    if kind == "stripe":
        r0, r1 = int(round(H - 4 * s)), int(round(H - 2 * s))
        out[idx, r0:r1, :] = np.maximum(out[idx, r0:r1, :], 230)
    elif kind == "ring":
        ring = np.abs(np.hypot(yy - 0.25 * H, xx - 0.72 * W) - 3.0 * s) <= 0.75 * s
        out[(idx[:, None], *np.nonzero(ring))] = 255
    elif kind == "logo":
        arm = int(round(2 * s))
        cy = rng.integers(arm + 1, H - arm - 1, size=len(idx))
        cx = rng.integers(arm + 1, W - arm - 1, size=len(idx))
        for i, y0, x0 in zip(idx, cy, cx, strict=True):
            out[i, y0 - arm:y0 + arm + 1, x0] = 255
            out[i, y0, x0 - arm:x0 + arm + 1] = 255
    elif kind == "frame":
        t = max(1, int(round(s)))
        frame = np.zeros((H, W), bool)
        frame[:t], frame[-t:], frame[:, :t], frame[:, -t:] = True, True, True, True
        out[(idx[:, None], *np.nonzero(frame))] = 200
    elif kind == "blob":
        g = np.exp(-((yy - 0.75 * H) ** 2 + (xx - 0.22 * W) ** 2) / (2 * (2.0 * s) ** 2))
        out[idx] = out[idx] + 160 * g
    else:
        raise ValueError(f"unknown artifact kind {kind!r}; one of {sorted(ARTIFACTS)}")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def config_dict(row: tuple, sizes: dict) -> dict[str, Any]:
    kind, k, r_k, r_o, r_shift, seed = row
    return {"artifact_kind": kind, "artifact": ARTIFACTS[kind], "confounded_class": k, "rate_class_siteA": r_k,
            "rate_others_siteA": r_o, "rate_class_siteB": 0.0, "rate_others_siteB": r_shift, "seed": seed, **sizes}


def build_splits(row: tuple, index: int, sizes: dict) -> dict[str, SimpleNamespace]:
    """The four splits. The image subset depends on the seed only (so the images before stamping, and
    the reference trained on them, are shared by configurations of one seed); the stamps are seeded
    per configuration."""
    from cbm.data import load_fashion_mnist
    from cbm.demo.garments import CLASSES

    kind, k, r_k, r_o, r_shift, seed = row
    train_pool, test_pool = load_fashion_mnist("train"), load_fashion_mnist("test")
    sub = np.random.default_rng(seed)
    a = sub.permutation(len(train_pool))[: sizes["n_train"] + sizes["n_val"]]
    b = sub.permutation(len(test_pool))[: sizes["n_test"] + sizes["n_shifted"]]
    plan = {"train": (train_pool, a[: sizes["n_train"]]), "val": (train_pool, a[sizes["n_train"]:]),
            "test": (test_pool, b[: sizes["n_test"]]), "shifted": (test_pool, b[sizes["n_test"]:])}
    rng = np.random.default_rng([seed, 1000 + index])
    ki = CLASSES.index(k)
    out = {}
    for name, (pool, idx) in plan.items():
        yi = pool.labels[idx].astype(np.int64)
        p = np.where(yi == ki, r_k if SITE[name] == "siteA" else 0.0, r_o if SITE[name] == "siteA" else r_shift)
        flags = rng.random(len(idx)) < p
        clean = pool.images[idx]
        out[name] = SimpleNamespace(images=stamp(clean, flags, kind, rng), clean=clean, yi=yi,
                                    y=np.asarray(CLASSES)[yi], stamped=flags)
    return out


# -- images -> folders + manifest -> cbm embed -------------------------------------------------------
def _content_key(parts: dict[str, dict[str, np.ndarray]], image_size: int) -> str:
    h = hashlib.sha256(f"{ENCODER}:{image_size}:v1".encode())
    for name in sorted(parts):
        for key in sorted(parts[name]):
            a = np.ascontiguousarray(parts[name][key])
            h.update(f"{name}/{key}/{a.dtype}/{a.shape}".encode())
            h.update(a.tobytes() if a.dtype != object else "\0".join(map(str, a)).encode())
    return h.hexdigest()[:24]


def write_folders(folder: Path, splits: dict[str, SimpleNamespace], attr: str = "images") -> Path:
    """PNG files under ``folder/<site>/<split>/<class>/`` and ``folder/manifest.csv``; written once
    (a marker says the folder is complete), so the files' mtimes, and cbm's own cache key, stay put."""
    from PIL import Image

    manifest = folder / "manifest.csv"
    if (folder / ".complete").is_file():
        return manifest
    rows = []
    for name, s in splits.items():
        for i, (img, label) in enumerate(zip(getattr(s, attr), s.y, strict=True)):
            rel = Path(SITE[name]) / name / re.sub(r"[^A-Za-z0-9]+", "-", label) / f"{name}-{i:05d}.png"
            (folder / rel.parent).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(folder / rel)
            rows.append({"path": rel.as_posix(), "label": label, "split": MANIFEST_SPLIT[name], "site": SITE[name]})
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "split", "site"])
        w.writeheader()
        w.writerows(rows)
    (folder / ".complete").write_text("ok\n")
    return manifest


def cbm_embed(manifest: Path, image_size: int, cache_dir: Path) -> tuple[Any, str]:
    """``cbm embed MANIFEST`` (the public CLI); returns the cache entry it wrote and its output."""
    from cbm.store import EmbeddingCache

    cmd = [sys.executable, "-m", "cbm", "embed", str(manifest), "--encoder", ENCODER, "--image-size",
           str(image_size), "--cache-dir", str(cache_dir), "--batch-size", "128", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    m = re.search(r"^cache: (.+)$", proc.stdout, re.M)
    if m is None:
        raise RuntimeError(f"`cbm embed` printed no cache path:\n{proc.stdout[-2000:]}")
    return EmbeddingCache(m.group(1).strip()), proc.stdout


def embed(splits: dict[str, SimpleNamespace], root: Path, image_size: int, attr: str = "images"
          ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Embeddings per split through folders + manifest + ``cbm embed``, cached by image content."""
    parts = {n: {"x": getattr(s, attr), "y": s.y.astype(object)} for n, s in splits.items()}
    key = _content_key(parts, image_size)
    npz = root / "embeddings" / f"{key}.npz"
    info: dict[str, Any] = {"content_key": key}
    if npz.is_file():
        with np.load(npz) as z:
            info.update(json.loads(str(z["info"])), cached=True)
            return {n: z[n] for n in splits}, info
    t0 = time.perf_counter()
    manifest = write_folders(root / "data" / key, splits, attr)
    info["write_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    cache, stdout = cbm_embed(manifest, image_size, root / "cbm-cache")
    info["cbm_embed_s"] = time.perf_counter() - t1
    info["cbm_embed_output"] = stdout.strip().splitlines()
    X_all = cache.as_array()
    ids = [str(i) for i in cache.ids]
    row = {r: i for i, r in enumerate(ids)}
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != len(X_all):
        raise RuntimeError(f"cbm embed kept {len(X_all)} of {len(rows)} images; see {cache}")
    splits_kept, sites_kept = cache.splits, cache.domains
    info["manifest_split_site_kept"] = splits_kept is not None and sites_kept is not None
    out: dict[str, list[int]] = {n: [] for n in splits}
    for r in rows:
        i = row[r["path"]]
        if splits_kept is not None and sites_kept is not None:
            if (splits_kept[i], sites_kept[i]) != (r["split"], r["site"]):
                raise RuntimeError(f"cache row {i} has split/site {(splits_kept[i], sites_kept[i])}, manifest "
                                   f"says {(r['split'], r['site'])}")
        name = r["path"].split("/")[1]
        out[name].append(i)
    X = {n: np.ascontiguousarray(X_all[out[n]], np.float32) for n in splits}
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez(tmp, info=json.dumps(info), **X)
    os.replace(tmp, npz)
    info["cached"] = False
    return X, info


# -- one configuration -------------------------------------------------------------------------------
_REFERENCE: dict[str, Any] = {}


def reference_model(splits: dict[str, SimpleNamespace], bank, labels: np.ndarray, seed: int, root: Path,
                    image_size: int):
    """KnoBo (and the black box) trained the same way on the same train/val images before stamping;
    once per set of images in a run (the subset depends on the seed only: three models at most)."""
    from cbm.demo.pipeline import fit_knobo
    from cbm.models import create_model

    clean = {s: splits[s] for s in ("train", "val")}
    Xc, info = embed(clean, root, image_size, attr="clean")
    if info["content_key"] not in _REFERENCE:
        t = time.perf_counter()
        knobo = fit_knobo(bank, Xc, clean, labels, seed)
        probe = create_model("linear-probe", random_state=seed).fit(Xc["train"], clean["train"].y)
        _REFERENCE[info["content_key"]] = (knobo, probe, {**info, "train_s": time.perf_counter() - t})
    return _REFERENCE[info["content_key"]]


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(pred) == np.asarray(y)).mean())


def _recall(pred: np.ndarray, y: np.ndarray, k: str) -> float:
    m = np.asarray(y) == k
    return float((np.asarray(pred)[m] == k).mean()) if m.any() else float("nan")


def run_config(row: tuple, index: int, sizes: dict, root: Path, log=print) -> dict[str, Any]:
    from cbm.demo.garments import concept_labels, garment_concept_bank, measured_thresholds
    from cbm.demo.pipeline import fit_knobo
    from cbm.edits import AddConcept, TrainingData
    from cbm.edits.discover import discover_shortcuts
    from cbm.edits.preview import EvalSet, edited_copy
    from cbm.edits.repair import compare_baselines, suggest_repairs
    from cbm.models import create_model

    kind, k, *_rates, seed = row
    t_all = time.perf_counter()
    out: dict[str, Any] = {"index": index, "config": config_dict(row, sizes), "artifact_kind": kind,
                           "confounded_class": k, "seed": seed}
    t = time.perf_counter()
    S = build_splits(row, index, sizes)
    out["data_s"] = time.perf_counter() - t
    out["stamped_share"] = {n: {"k": float(s.stamped[s.y == k].mean()), "others": float(s.stamped[s.y != k].mean())}
                            for n, s in S.items()}

    t = time.perf_counter()
    X, einfo = embed(S, root, sizes["image_size"])
    out["embed_s"] = time.perf_counter() - t
    out["embedding"] = {k2: v for k2, v in einfo.items() if k2 != "cbm_embed_output"}
    out["embedding"]["cbm_embed_output"] = einfo.get("cbm_embed_output", [])[-3:]
    Y = {n: s.y for n, s in S.items()}
    how = "from the cache" if einfo.get("cached") else f"{out['embed_s']:.0f} s"
    log(f"  [{index}] embedded ({how})")

    # the bank without the artifact; labels from the class prior and the images before stamping
    t = time.perf_counter()
    bank = garment_concept_bank(include_artifact=False)
    assert "tag in the corner" not in bank.names
    thresholds = measured_thresholds(S["train"].clean)
    labels = concept_labels(bank, S["train"].yi, np.zeros(len(S["train"].yi), bool), S["train"].clean, thresholds)
    model = fit_knobo(bank, X, S, labels, seed)
    probe = create_model("linear-probe", random_state=seed).fit(X["train"], Y["train"])
    out["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ref_knobo, ref_probe, rinfo = reference_model(S, bank, labels, seed, root, sizes["image_size"])
    out["reference_s"] = time.perf_counter() - t
    log(f"  [{index}] trained KnoBo + black box ({out['train_s']:.0f} s), reference ({out['reference_s']:.0f} s)")

    before = {n: model.predict(X[n]) for n in ("test", "shifted")}
    out.update(shifted_before=_acc(before["shifted"], Y["shifted"]), in_domain_before=_acc(before["test"], Y["test"]),
               k_recall_shifted_before=_recall(before["shifted"], Y["shifted"], k),
               k_recall_in_domain_before=_recall(before["test"], Y["test"], k),
               black_box_shifted=float(probe.score(X["shifted"], Y["shifted"])),
               black_box_in_domain=float(probe.score(X["test"], Y["test"])),
               reference_shifted=float(ref_knobo.score(X["shifted"], Y["shifted"])),
               reference_in_domain=float(ref_knobo.score(X["test"], Y["test"])),
               reference_black_box_shifted=float(ref_probe.score(X["shifted"], Y["shifted"])))
    out["headroom_points"] = 100 * (out["reference_shifted"] - out["shifted_before"])

    # 4. discover (training site's training split only; no flags)
    t0 = time.perf_counter()
    cands = discover_shortcuts(model, X["train"], Y["train"], top=10)
    out["discover_s"] = time.perf_counter() - t0
    flags = S["train"].stamped  # scoring only, from here
    out["candidates"] = [{"rank": c.rank, "class": c.class_name, "n": len(c.indices), "score": c.score,
                          "share_in_class": round(c.share_in_class, 4), "share_elsewhere": round(c.share_elsewhere, 4),
                          "support": c.support, "reliance": c.reliance,
                          "stamped_share": round(float(flags[c.indices].mean()), 4),
                          "recall_of_stamped": round(float(np.isin(np.flatnonzero(flags), c.indices).mean()), 4)}
                         for c in cands]
    first = next((c for c in out["candidates"] if c["stamped_share"] >= 0.5), None)
    out["discovered_rank"] = None if first is None else first["rank"]
    out["discovered_precision"] = None if first is None else first["stamped_share"]
    if not cands:
        raise RuntimeError("discover_shortcuts returned no candidate")

    # 5. name it: the rank-1 candidate, whatever it is
    t1 = time.perf_counter()
    cand = cands[0]
    pos, neg = cand.concept_examples()
    edit = AddConcept.from_examples("discovered 1", X["train"][pos], X["train"][neg], {}, model=model)
    edit.apply(model)
    out["name_s"] = time.perf_counter() - t1
    out["rank1"] = {"class": cand.class_name, "is_confounded_class": cand.class_name == k,
                    "stamped_share": out["candidates"][0]["stamped_share"], "n_pos": len(pos), "n_neg": len(neg),
                    "concept_val_acc": edit.detail.get("val_acc")}
    j = model.concept_names_.index("discovered 1")
    fires = model.transform(X["shifted"])[:, j] > 0.5  # scoring only: does the named concept see the artifact?
    out["rank1"]["concept_vs_artifact_shifted"] = {
        "fires_on_stamped": float(fires[S["shifted"].stamped].mean()) if S["shifted"].stamped.any() else None,
        "fires_on_unstamped": float(fires[~S["shifted"].stamped].mean())}
    out["add_concept_changed_predictions"] = int((model.predict(X["shifted"]) != before["shifted"]).sum())

    # 6. repair, chosen on the training site's validation split only
    t2 = time.perf_counter()
    data = TrainingData(X["train"], Y["train"], None, X["val"], Y["val"])
    val = EvalSet.from_model(model, X["val"], Y["val"], "val")
    table = suggest_repairs(model, val, cand.class_name, "discovered 1", data=data)
    chosen = table.iloc[0]["edit"]
    after_model = edited_copy(model, chosen)[0] if chosen is not None else model
    out["repair_s"] = time.perf_counter() - t2
    out["wall_s"] = out["discover_s"] + out["name_s"] + out["repair_s"]
    out["chosen_edit"] = chosen.describe() if chosen is not None else "no edit"
    out["repair_table"] = [{"edit": r.name, "score": _f(r.score), "gain": _f(r.gain), "gain_low": _f(r.gain_low),
                            "val_accuracy": _f(r.val_accuracy), "chosen": bool(r.chosen), "error": r.error or ""}
                           for r in table.itertuples()]
    log(f"  [{index}] discover {out['discover_s']:.1f} s, name {out['name_s']:.1f} s, repair {out['repair_s']:.1f} s: "
        f"{out['chosen_edit']}")

    # 7. score
    after = {n: after_model.predict(X[n]) for n in ("test", "shifted")}
    out.update(shifted_after=_acc(after["shifted"], Y["shifted"]), in_domain_after=_acc(after["test"], Y["test"]),
               k_recall_shifted_after=_recall(after["shifted"], Y["shifted"], k),
               k_recall_in_domain_after=_recall(after["test"], Y["test"], k))
    out["in_domain_cost_points"] = 100 * (out["in_domain_before"] - out["in_domain_after"])
    out["shifted_gain_points"] = 100 * (out["shifted_after"] - out["shifted_before"])
    out["headroom_recovered"] = (out["shifted_gain_points"] / out["headroom_points"]
                                 if out["headroom_points"] > 0 else None)
    evalsets = {n: EvalSet.from_model(model, X[n], Y[n], n) for n in ("val", "test", "shifted")}
    t3 = time.perf_counter()
    bl = compare_baselines(model, chosen, evalsets, probe, data if chosen is not None else None, cls=k)
    out["baselines_s"] = time.perf_counter() - t3
    acc = {(r.split, r.model): r.accuracy for r in bl.itertuples()}
    out["black_box_same_fix_shifted"] = acc.get(("shifted", "black box + same fix"))
    out["black_box_same_fix_in_domain"] = acc.get(("test", "black box + same fix"))
    out["never_predict_k_shifted"] = acc.get(("shifted", f"CBM never predicts {k}"))
    out["black_box_never_predict_k_shifted"] = acc.get(("shifted", f"black box never predicts {k}"))
    if chosen is not None and out["shifted_after"] != acc.get(("shifted", "CBM after the edit"), out["shifted_after"]):
        out["note_after_mismatch"] = acc.get(("shifted", "CBM after the edit"))
    out["total_s"] = time.perf_counter() - t_all
    return out


def _f(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


# -- goals, table, file ------------------------------------------------------------------------------
def goals(configs: list[dict], sizes: dict) -> dict[str, Any]:
    ok = [c for c in configs if "error" not in c]
    n = len(configs)
    disc = [c for c in ok if c["discovered_rank"] is not None and c["discovered_rank"] <= 3
            and c["discovered_precision"] >= 0.8]
    no_harm = [c for c in ok if c["shifted_after"] >= c["shifted_before"] - 0.01]
    room = [c for c in ok if c["headroom_points"] >= 2.0]
    recovered = [c for c in room if c["shifted_gain_points"] >= 0.7 * c["headroom_points"]]
    bb_fix = [c for c in ok if c["black_box_same_fix_shifted"] is not None
              and c["shifted_after"] > c["black_box_same_fix_shifted"]]
    walls = [c["wall_s"] for c in ok]
    at_default = all(sizes[k] == v for k, v in DEFAULT_SIZES.items())
    need = {"discovery": int(np.ceil(10 / 12 * n)), "no_harm": n, "repair_vs_black_box": int(np.ceil(10 / 12 * n))}
    return {
        "n_configs": n, "n_failed": n - len(ok),
        "discovery": {"count": len(disc), "of": n, "needed": need["discovery"], "met": n > 0 and len(disc) >= need["discovery"],
                      "rank1_is_artifact": sum(c["candidates"][0]["stamped_share"] >= 0.5 for c in ok),
                      "found_in_top10": sum(c["discovered_rank"] is not None for c in ok)},
        "no_harm": {"count": len(no_harm), "of": n, "needed": need["no_harm"], "met": n > 0 and len(no_harm) == n},
        "repair_headroom": {"count": len(recovered), "of_with_headroom_ge_2": len(room),
                            "needed": int(np.ceil(0.75 * len(room))),
                            "met": bool(room) and len(recovered) >= 0.75 * len(room)},
        "repair_vs_black_box_same_fix": {"count": len(bb_fix), "of": n, "needed": need["repair_vs_black_box"],
                                         "no_edit_chosen_null": sum(c["black_box_same_fix_shifted"] is None for c in ok),
                                         "met": n > 0 and len(bb_fix) >= need["repair_vs_black_box"]},
        "timing": {"max_wall_s": max(walls) if walls else None,
                   "median_wall_s": float(np.median(walls)) if walls else None, "limit_s": 120.0,
                   "at_default_sizes": at_default,
                   "met": bool(walls) and max(walls) < 120.0 and at_default},
        "edits_chosen": sum(c.get("chosen_edit", "no edit") != "no edit" for c in ok),
        "median_gain_points": float(np.median([c["shifted_gain_points"] for c in ok])) if ok else None,
        "median_headroom_points": float(np.median([c["headroom_points"] for c in ok])) if ok else None,
    }


def table(configs: list[dict]) -> str:
    head = (f"{'#':>2} {'artifact':<7}{'class':<9}{'seed':>4} {'rank':>4}{'prec':>6} {'rank-1 class':<12}"
            f"{'before':>7}{'after':>7}{'ref':>7}{'room':>6}{'rec%':>6}{'bb':>7}{'bb+fix':>7}{'never k':>8}"
            f"{'k rec':>11}{'cost':>6}{'wall':>6}  edit")
    lines = [head, "-" * len(head)]
    for c in configs:
        if "error" in c:
            lines.append(f"{c['index']:>2} {c['artifact_kind']:<7}{c['confounded_class']:<9}{c['seed']:>4}  ERROR "
                         f"{c['error'][:80]}")
            continue
        rec = c["headroom_recovered"]
        fmt = lambda v: f"{v:7.3f}" if v is not None else f"{'-':>7}"  # noqa: E731
        edit = c["chosen_edit"]
        short = edit.split("(")[0] + (" (" + ", ".join(re.findall(r"(\w+)=True", edit)) + ")"
                                      if "=True" in edit else "")
        lines.append(
            f"{c['index']:>2} {c['artifact_kind']:<7}{c['confounded_class'][:8]:<9}{c['seed']:>4} "
            f"{c['discovered_rank'] if c['discovered_rank'] is not None else '-':>4}"
            f"{c['discovered_precision'] if c['discovered_precision'] is not None else float('nan'):6.2f} "
            f"{c['rank1']['class'][:11]:<12}{c['shifted_before']:7.3f}{c['shifted_after']:7.3f}"
            f"{c['reference_shifted']:7.3f}{c['headroom_points']:6.1f}"
            f"{'%6.0f' % (100 * rec) if rec is not None else '     -'}{c['black_box_shifted']:7.3f}"
            f"{fmt(c['black_box_same_fix_shifted'])}{fmt(c['never_predict_k_shifted'])} "
            f"{c['k_recall_shifted_before']:4.2f}->{c['k_recall_shifted_after']:4.2f}"
            f"{c['in_domain_cost_points']:6.1f}{c['wall_s']:6.1f}  {short}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small configurations (800/200/200/400 at 64 px)")
    ap.add_argument("--small", action="store_true",
                    help="all 12 configurations at the quick sizes (800/200/200/400 at 64 px) into own_data.json")
    ap.add_argument("--root", type=Path, default=None,
                    help="work folder: image folders, manifests, embedding caches "
                         "(default $CBM_HOME/bench_own_data, else ~/.cache/cbmkit/bench_own_data)")
    ap.add_argument("--only", type=int, nargs="*", default=None, help="run only these configuration indices")
    ap.add_argument("--redo", action="store_true", help="recompute configurations already recorded")
    ap.add_argument("--table", action="store_true", help="print the recorded table and goals")
    args = ap.parse_args(argv)
    rows, sizes = (QUICK_CONFIGS, QUICK_SIZES) if args.quick else (CONFIGS, DEFAULT_SIZES)
    label = "quick (2 configurations)" if args.quick else "cbm demo's default sizes"
    if args.small:
        sizes, label = SMALL_SIZES, "small: the quick sizes, not the demo's defaults (which did not fit the time)"
    name = NAME + ("_quick" if args.quick else "")
    path = RESULTS_DIR / f"{name}.json"
    root = args.root or Path(os.environ.get("CBM_HOME", Path.home() / ".cache" / "cbmkit")) / "bench_own_data"
    if args.table:
        done = recorded_configs(path)
        print(table(done))
        print(json.dumps(goals(done, sizes), indent=1))
        return 0
    t_run = time.perf_counter()
    order = range(len(rows)) if args.only is None else args.only
    for i in order:
        if not args.redo and is_recorded(path, config_dict(rows[i], sizes)):
            continue
        print(f"[{i}] {rows[i]}", flush=True)
        try:
            result = run_config(rows[i], i, sizes, root, log=lambda *a: print(*a, flush=True))
        except Exception as e:  # noqa: BLE001 - recorded, so a partial run still says what broke
            import traceback

            traceback.print_exc()
            kind, k, *_r, seed = rows[i]
            result = {"index": i, "config": config_dict(rows[i], sizes), "artifact_kind": kind,
                      "confounded_class": k, "seed": seed, "error": f"{type(e).__name__}: {e}"}
        record_config(path, i, result, lambda done: write_result(NAME, {
            "sizes": sizes, "sizes_label": label, "encoder": ENCODER, "goals_stated": GOALS,
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "goals": goals(done, sizes), "configs": done, "artifacts": ARTIFACTS}, quick=args.quick))
        if "error" not in result:
            print(f"[{i}] discovered rank {result['discovered_rank']} (precision {result['discovered_precision']}); "
                  f"{result['chosen_edit']}; shifted {result['shifted_before']:.3f} -> {result['shifted_after']:.3f} "
                  f"(reference {result['reference_shifted']:.3f}); {result['total_s']:.0f} s", flush=True)
    done = recorded_configs(path)
    print(f"\nrun time {time.perf_counter() - t_run:.0f} s; {path}\n")
    print(table(done))
    print(json.dumps(goals(done, sizes), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
