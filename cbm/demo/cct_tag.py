"""Where does the Concept-Centric Transformer look for the demo's tag? (spatial faithfulness)

The demo's confounded Fashion-MNIST (:func:`cbm.demo.pipeline.build_splits`) is embedded as
MobileNetV2 patch tokens at 224 px (7 x 7 tokens of 1280-d, cached by the EmbeddingStore with
``kind="tokens"``). A CCT is trained with *image-level* concept labels only: one concept per
garment class ("a Shirt", ...) and the artifact "tag in the corner" (present iff the image was
stamped); no spatial target says where the tag is. Then, on stamped test images, its attention
map for the tag concept is compared with the patches that hold the tag:

* ``pointing_game``: share of stamped images whose most attended patch holds the tag;
* ``mass_on_tag``: share of the tag concept's attention mass on those patches (uniform: 4/49);
* ``contrast``: mean attention per tag patch over mean per other patch (pooled over images);
* the same on images stamped in a corner never seen in training (bottom-right), and the spread
  (normalised entropy) of the map on untagged images.

    from cbm.demo.cct_tag import run
    result = run(quick_config(), image_size=224)     # dict of numbers (see bench_cct.py)
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from cbm.concept_maps import patch_mask, pointing_game, region_mass, spread
from cbm.demo.confound import ConfoundConfig, stamp

TAG = "tag in the corner"
#: label -> model parameters: CCT with the tag as its spatial concept (the default: trained from the
#: image-level tag flag as a multiple-instance target), the same with the released mean-attention
#: cost, the Concept Transformer, and CCT with every concept global (per-image slots)
VARIANTS = {"cct": {"variant": "cct", "spatial_concepts": [TAG]},
            "cct (released mean cost)": {"variant": "cct", "spatial_concepts": [TAG], "spatial_pooling": "mean"},
            "ct": {"variant": "ct"},
            "cct (all concepts global)": {"variant": "cct"}}


def tag_box(cfg: ConfoundConfig, image_shape: tuple[int, int] = (28, 28)) -> tuple[int, int, int, int]:
    """Pixel box (top, left, bottom, right) that :func:`cbm.demo.confound.stamp` fills."""
    H, W = image_shape
    s = cfg.tag_size
    top = 1 if cfg.corner.startswith("top") else H - 1 - s
    left = 1 if cfg.corner.endswith("left") else W - 1 - s
    return (top, left, top + s, left + s)


def concept_targets(y: np.ndarray, stamped: np.ndarray, classes: list[str]) -> np.ndarray:
    """Image-level concept labels (N, K + 1): one-hot garment class, then the tag flag."""
    onehot = (np.asarray(y)[:, None] == np.asarray(classes)[None, :]).astype(np.float32)
    return np.concatenate([onehot, np.asarray(stamped, np.float32)[:, None]], axis=1)


def embed_tokens(splits: dict[str, Any], image_size: int = 224, cache_dir: Any = None,
                 progress: bool = False) -> tuple[dict[str, np.ndarray], Any]:
    """MobileNetV2 patch tokens (N, T, 1280) float16 of every split, through the EmbeddingStore."""
    from cbm.data import ImageDataset
    from cbm.encoders import create_encoder
    from cbm.store import EmbeddingStore

    enc = create_encoder("mobilenet_v2", image_size=image_size)
    store = EmbeddingStore(cache_dir)
    out = {}
    for name, s in splits.items():
        ds = ImageDataset(images=s.images, ids=list(s.ids), name=f"cbm-demo-{name}")
        out[name] = store.get_or_compute(enc, ds, kind="tokens", progress=progress).as_array(None)
    return out, enc


def run(cfg: Any, *, image_size: int = 224, cache_dir: Any = None, model_params: dict | None = None,
        progress: bool = False, out_dir: Any = None, variants: tuple[str, ...] = tuple(VARIANTS),
        probe: bool = True) -> dict[str, Any]:
    """Train CCT (and the other ``variants`` of :data:`VARIANTS`, and a linear probe) on the demo
    and measure where the tag concept attends. Returns a JSON-able dict.

    With ``out_dir``, the CCT model is saved there as a model directory with its test and shifted
    splits (tokens, images, sites) in ``data.npz``: ``cbm app OUT_DIR`` draws its concept maps.
    """
    from cbm.bank import ConceptBank
    from cbm.demo.garments import CLASSES
    from cbm.demo.pipeline import build_splits
    from cbm.models import create_model

    t0 = time.perf_counter()
    splits = build_splits(cfg)
    tokens, enc = embed_tokens(splits, image_size, cache_dir, progress)
    t_embed = time.perf_counter() - t0
    grid = enc.tokens().token_grid
    names = [f"a {c}" for c in CLASSES] + [TAG]
    bank = ConceptBank(names)
    C = {n: concept_targets(s.y, s.stamped, CLASSES) for n, s in splits.items()}
    res: dict[str, Any] = {"config": cfg.describe(), "image_size": image_size, "token_grid": list(grid),
                           "n_tokens": int(grid[0] * grid[1]), "token_dim": int(enc.tokens().dim),
                           "embed_s": round(t_embed, 1), "models": {}}
    tr, va = splits["train"], splits["val"]
    models = {}
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "cct" not in variants:
        raise ValueError(f"variants must include 'cct' and name entries of VARIANTS {list(VARIANTS)}; "
                         f"got {list(variants)}.")
    for label in variants:
        params = {"concepts": bank, **VARIANTS[label], "random_state": cfg.seed, **(model_params or {})}
        model = create_model("cct", **params)
        t = time.perf_counter()
        model.fit(tokens["train"], tr.y, X_val=tokens["val"], y_val=va.y, concept_labels=C["train"])
        sec = time.perf_counter() - t
        models[label] = model
        res["models"][label] = {
            "fit_s": round(sec, 1), "epochs": len(model.history_),
            "s_per_epoch": round(sec / len(model.history_), 2),
            **{f"accuracy_{n}": round(float(model.score(tokens[n], splits[n].y)), 4)
               for n in ("test", "shifted")}}
    if probe:
        lp = create_model("linear-probe", random_state=cfg.seed)
        lp.fit(tokens["train"].astype(np.float32).mean(1), tr.y)
        res["models"]["linear-probe (pooled tokens)"] = {
            f"accuracy_{n}": round(float(lp.score(tokens[n].astype(np.float32).mean(1), splits[n].y)), 4)
            for n in ("test", "shifted")}
    moved = enc.encode_tokens(unseen_corner_images(splits, cfg.confound)[0]).astype(np.float16)
    for variant, model in models.items():
        res["models"][variant]["tag"] = tag_attention(model, splits, tokens, enc, cfg.confound, grid, moved)
    if out_dir is not None:
        res["model_dir"] = str(save_demo_model(models["cct"], out_dir, splits, tokens, enc, res))
    res["total_s"] = round(time.perf_counter() - t0, 1)
    return res


def save_demo_model(model: Any, out_dir: Any, splits: dict[str, Any], tokens: dict[str, np.ndarray],
                    enc: Any, res: dict[str, Any]) -> Any:
    """The CCT model as a model directory, with test/shifted tokens and images for the app."""
    from pathlib import Path

    from cbm.edits.preview import save_eval_data
    from cbm.io import save_model

    out = Path(out_dir)
    save_model(model, out, note="CCT on the confounded Fashion-MNIST demo (cbm.demo.cct_tag)",
               metrics={"cct_tag": res["models"]["cct"]}, fingerprints={"encoder": enc.tokens().fingerprint})
    save_eval_data(out / "data.npz", {
        n: {"X": tokens[n], "y": splits[n].y, "domains": splits[n].domains, "ids": splits[n].ids,
            "images": splits[n].images, "tagged": splits[n].stamped} for n in ("test", "shifted")})
    return out


def tag_attention(model: Any, splits: dict[str, Any], tokens: dict[str, np.ndarray], enc: Any,
                  confound: ConfoundConfig, grid: tuple[int, int],
                  moved_tokens: np.ndarray | None = None) -> dict[str, Any]:
    """Faithfulness numbers of the tag concept's maps on the test and shifted splits.

    The untagged images restamped in an unseen corner (:func:`unseen_corner_images`) are embedded
    here unless ``moved_tokens`` (their tokens) are given.
    """
    j = model.concept_names_.index(TAG)
    X = np.concatenate([tokens["test"], tokens["shifted"]])
    stamped = np.concatenate([splits["test"].stamped, splits["shifted"].stamped])
    images = np.concatenate([splits["test"].images, splits["shifted"].images])
    maps = model.concept_maps(X)[:, j]
    region = patch_mask(tag_box(confound, images.shape[1:3]), images.shape[1:3], grid)
    on, off = maps[stamped], maps[~stamped]
    out = {"n_stamped": int(stamped.sum()), "n_untagged": int((~stamped).sum()),
           "tag_patches": int(region.sum()),
           "uniform_mass": round(float(region.sum() / region.size), 4),
           "pointing_game": round(pointing_game(on, region), 4),
           "mass_on_tag": round(float(region_mass(on, region).mean()), 4),
           "contrast": round(_contrast(on, region), 2),
           "spread_stamped": round(float(spread(on).mean()), 4),
           "spread_untagged": round(float(spread(off).mean()), 4),
           "score_stamped": round(float(model.transform(X[stamped])[:, j].mean()), 4),
           "score_untagged": round(float(model.transform(X[~stamped])[:, j].mean()), 4),
           "mass_on_tag_region_untagged": round(float(region_mass(off, region).mean()), 4)}
    moved, other = unseen_corner_images(splits, confound)
    if moved_tokens is None:
        moved_tokens = enc.encode_tokens(moved).astype(np.float16)
    maps2 = model.concept_maps(moved_tokens)[:, j]
    region2 = patch_mask(tag_box(other, images.shape[1:3]), images.shape[1:3], grid)
    out["unseen_corner"] = {"corner": other.corner, "n": int(len(moved)),
                            "pointing_game": round(pointing_game(maps2, region2), 4),
                            "mass_on_tag": round(float(region_mass(maps2, region2).mean()), 4),
                            "contrast": round(_contrast(maps2, region2), 2)}
    return out


def unseen_corner_images(splits: dict[str, Any], confound: ConfoundConfig) -> tuple[np.ndarray, ConfoundConfig]:
    """The untagged test and shifted images stamped in a corner never seen in training (bottom-right)."""
    images = np.concatenate([splits["test"].images, splits["shifted"].images])
    stamped = np.concatenate([splits["test"].stamped, splits["shifted"].stamped])
    other = replace(confound, corner="bottom-right")
    return stamp(images[~stamped], np.ones(int((~stamped).sum()), bool), other), other


def _contrast(maps: np.ndarray, region: np.ndarray) -> float:
    return float(maps[:, region].mean() / max(float(maps[:, ~region].mean()), 1e-12))


#: split sizes of ``cbm demo --cct`` at most (those of ``benchmarks/bench_cct.py``): 224 px tokens
#: are about 5 times the pixels of the demo's 96 px embedding, and CCT trains on 49 tokens per image
CCT_SIZES = {"n_train": 2000, "n_val": 500, "n_test": 500, "n_shifted": 1000}


def run_demo_cct(cfg: Any, *, out_dir: Any = None, cache_dir: Any = None, progress: bool = False,
                 model_params: dict | None = None, log: Any = print) -> dict[str, Any]:
    """``cbm demo --cct``: train CCT on the demo's data (224 px tokens, splits capped at
    :data:`CCT_SIZES`), save it as a model directory for ``cbm app`` (``OUT/models/cct``) and write
    HTML reports with the tag concept's attention map over a stamped image of each site
    (``OUT/cct-tag-<split>.html``).

    Returns :func:`run`'s numbers with ``"reports"`` (the HTML paths) and ``"model_dir"``.
    """
    from pathlib import Path

    from cbm.edits.preview import load_eval_data
    from cbm.io import load_model
    from cbm.report import sample_report

    cfg = replace(cfg, **{k: min(int(getattr(cfg, k)), v) for k, v in CCT_SIZES.items()})
    out = Path(out_dir if out_dir is not None else cfg.out_dir)
    res = run(cfg, cache_dir=cache_dir if cache_dir is not None else cfg.cache_dir, progress=progress,
              model_params=model_params, out_dir=out / "models" / "cct", variants=("cct",), probe=False)
    model_dir = Path(res["model_dir"])
    model, data = load_model(model_dir), load_eval_data(model_dir / "data.npz")
    res["reports"] = {}
    for split in ("test", "shifted"):
        rows = np.flatnonzero(np.asarray(data[split]["tagged"], bool))
        if len(rows):
            page = sample_report(model, data, split, int(rows[0]), concept=TAG)
            path = out / f"cct-tag-{split}.html"
            path.write_text(page, encoding="utf-8")
            res["reports"][split] = str(path)
    m = res["models"]["cct"]
    tag = m["tag"]
    log(f"CCT (7 x 7 tokens, {m['epochs']} epochs, {m['fit_s']:.0f} s): in-domain {m['accuracy_test']:.3f}, "
        f"shifted {m['accuracy_shifted']:.3f}; the tag concept's attention peaks on the tag in "
        f"{tag['pointing_game']:.0%} of stamped images ({tag['unseen_corner']['pointing_game']:.0%} in a corner "
        f"never seen in training)")
    log(f"CCT model directory: {model_dir} (cbm app {model_dir}); tag maps: "
        + ", ".join(res["reports"].values()))
    return res
