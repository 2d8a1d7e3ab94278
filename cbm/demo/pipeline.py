"""``cbm demo``: a real concept bottleneck model of real images that leans on a planted confounder.

Steps (each cached or fast on a second run):

1. Fashion-MNIST images (offline, Debian's package), a seeded subset split into train / val
   (training site), an in-domain test split (training site) and a shifted test split (shifted site),
   with the tag stamped as :class:`~cbm.demo.confound.ConfoundConfig` says.
2. Embeddings by the offline ImageNet MobileNetV2, cached in the :class:`~cbm.store.EmbeddingStore`.
3. The garment concept bank, grounded KnoBo-style from per-image concept labels; a knowledge-prior
   head (KnoBo), a PCBM head on CAVs of the same concepts, and a linear probe as the black box.
4. A report of in-domain and shifted accuracy with sparsity, the edit suggestions, and the effect of
   pruning the artifact concept from the confounded class, measured (never assumed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm.demo.confound import ConfoundConfig, draw_tags, stamp
from cbm.demo.garments import (
    ARTIFACT,
    CLASSES,
    concept_labels,
    garment_concept_bank,
    measured_thresholds,
)

SPLITS = ("train", "val", "test", "shifted")


def default_demo_dir() -> Path:
    """Where ``cbm demo`` writes: ``$CBM_HOME/demo`` (default ``~/.cache/cbmkit/demo``)."""
    return Path(os.environ.get("CBM_HOME", Path.home() / ".cache" / "cbmkit")) / "demo"


@dataclass
class DemoConfig:
    """Sizes, backbone and confounder of the demo. The defaults are what the README reports."""

    n_train: int = 4000
    n_val: int = 1000
    n_test: int = 1000
    n_shifted: int = 2000
    image_size: int = 96
    seed: int = 0
    confound: ConfoundConfig = field(default_factory=ConfoundConfig)
    out_dir: Path = field(default_factory=default_demo_dir)
    cache_dir: Path | None = None
    batch_size: int = 128
    llm_model: str | None = None      # regenerate the garment bank through an LLM (cbm.concepts)
    llm_base_url: str | None = None
    tag_free_reference: bool = True   # also train on the same images without the tag (a reference)

    def __post_init__(self) -> None:
        for k in ("n_train", "n_val", "n_test", "n_shifted"):
            if int(getattr(self, k)) < 20:
                raise ValueError(f"DemoConfig.{k} must be at least 20; got {getattr(self, k)!r}.")
        if self.n_train + self.n_val > 60000 or self.n_test + self.n_shifted > 10000:
            raise ValueError("Fashion-MNIST has 60,000 training and 10,000 test images: "
                             "n_train + n_val <= 60000 and n_test + n_shifted <= 10000.")
        if self.confound.confounded_class not in CLASSES:
            from cbm.exceptions import unknown_name_message

            raise ValueError(unknown_name_message("class", self.confound.confounded_class, CLASSES))
        self.out_dir = Path(self.out_dir)

    def describe(self) -> str:
        return (f"Fashion-MNIST subset: {self.n_train} train + {self.n_val} val (training site), "
                f"{self.n_test} in-domain test, {self.n_shifted} shifted test; MobileNetV2 (ImageNet) "
                f"at {self.image_size} px; seed {self.seed}\nconfounder: {self.confound.describe()}")

    @property
    def model_dir(self) -> Path:
        return self.out_dir / "model"


def quick_config(**changes: Any) -> DemoConfig:
    """A small configuration (1,600 images at 64 px) for tests and a first look."""
    return DemoConfig(**{"n_train": 800, "n_val": 200, "n_test": 200, "n_shifted": 400, "image_size": 64,
                         **changes})


@dataclass
class DemoSplit:
    """One split: stamped images, labels (class names), site, tag flags, ids, and the images before
    stamping (``clean``: measured concepts are read from them)."""

    images: np.ndarray
    y: np.ndarray
    domains: np.ndarray
    stamped: np.ndarray
    ids: np.ndarray
    clean: np.ndarray | None = None


def build_splits(cfg: DemoConfig, root: str | Path | None = None) -> dict[str, DemoSplit]:
    """The four demo splits from Fashion-MNIST, with the tag stamped per site (seeded)."""
    from cbm.data import load_fashion_mnist

    rng = np.random.default_rng(cfg.seed)
    k = CLASSES.index(cfg.confound.confounded_class)
    train_pool = load_fashion_mnist("train", root)
    test_pool = load_fashion_mnist("test", root)
    a = rng.permutation(len(train_pool))[: cfg.n_train + cfg.n_val]
    b = rng.permutation(len(test_pool))[: cfg.n_test + cfg.n_shifted]
    plan = {
        "train": (train_pool, a[: cfg.n_train], "train"),
        "val": (train_pool, a[cfg.n_train:], "train"),
        "test": (test_pool, b[: cfg.n_test], "train"),
        "shifted": (test_pool, b[cfg.n_test:], "shifted"),
    }
    out = {}
    for name, (pool, idx, site) in plan.items():
        y = pool.labels[idx]
        tags = draw_tags(y, k, site, cfg.confound, rng)
        out[name] = DemoSplit(
            images=stamp(pool.images[idx], tags, cfg.confound),
            y=np.asarray(CLASSES)[y],
            domains=np.full(len(idx), "site A" if site == "train" else "site B"),
            stamped=tags,
            ids=np.asarray([f"{name}/{pool.ids[i]}" for i in idx]),
            clean=pool.images[idx],
        )
    return out


def embed_splits(splits: dict[str, DemoSplit], cfg: DemoConfig, progress: bool = True):
    """MobileNetV2 embeddings of every split through the embedding cache (one entry per split, so a
    change to one split's confounder re-embeds only that split). Returns (X per split, encoder, summary)."""
    from cbm.data import ImageDataset
    from cbm.encoders import create_encoder
    from cbm.store import EmbeddingStore

    encoder = create_encoder("mobilenet_v2", image_size=cfg.image_size)
    store = EmbeddingStore(cfg.cache_dir)
    out, lines, hits = {}, [], 0
    for name, s in splits.items():
        dataset = ImageDataset(images=s.images, labels=_class_index(s.y), classes=CLASSES, ids=list(s.ids),
                               name=f"cbm-demo-{name}")
        cache = store.get_or_compute(encoder, dataset, batch_size=cfg.batch_size, progress=progress)
        X = cache.as_array()
        if len(X) != len(s.y):
            raise RuntimeError(f"{len(s.y) - len(X)} demo images of split {name!r} could not be embedded; "
                               f"see {cache.stats.path}.")
        out[name] = X
        hits += bool(cache.stats.cache_hit)
        lines.append(f"  {name}: {cache.stats.summary().splitlines()[0]}")
    head = f"embeddings: {hits} of {len(splits)} splits from the cache ({store.root})"
    return out, encoder, "\n".join([head, *lines])


def write_eval_data(path: Path, splits: dict[str, DemoSplit], X: dict[str, np.ndarray],
                    include: tuple[str, ...] = ("train", "val", "test", "shifted"),
                    labels: dict[str, np.ndarray] | None = None,
                    concepts: dict[str, np.ndarray] | None = None) -> Path:
    """The app's evaluation file: X, labels, site, ids, images and tag flags per split; the per-image
    concept labels of the grounded concepts (``labels``: what refitting edits re-ground with) and of
    every concept of the bank (``concepts``: what ``cbm eval --annotations data`` reads)."""
    from cbm.edits.preview import save_eval_data

    out = {}
    for name in include:
        out[name] = {"X": X[name], "y": splits[name].y, "domains": splits[name].domains, "ids": splits[name].ids,
                     "images": splits[name].images, "stamped": splits[name].stamped}
        if labels is not None and name in labels:
            out[name]["concept_labels"] = labels[name]
        if concepts is not None and name in concepts:
            out[name]["concepts"] = np.asarray(concepts[name], np.int8)
    return save_eval_data(path, out, class_names=CLASSES)


def llm_concept_bank(model: str, base_url: str | None = None, cache_dir: Path | None = None):
    """The garment bank written by an LLM instead (LaBo prompts), plus the artifact concept.

    The LLM says which class each concept was generated for (+1); for grounding, the other
    classes count as "no" (-1), as LaBo's class prior reads.
    """
    from cbm.concepts import LLMClient, generate_llm_concepts

    kw = {} if cache_dir is None else {"cache_dir": Path(cache_dir) / "llm"}
    llm = generate_llm_concepts(CLASSES, LLMClient(model, base_url=base_url, **kw), family="labo")
    prior = np.where(llm.prior > 0, 1.0, -1.0).astype(np.float32)
    artifact = garment_concept_bank().subset([ARTIFACT])
    return llm.with_prior(CLASSES, prior).merge(artifact)


def _cav_bank(bank, X: np.ndarray, labels: np.ndarray, fingerprint: str, seed: int):
    """PCBM's concepts: one CAV per concept from images labelled positive / negative for it.

    Concepts no class answers "yes" to (e.g. "zipper") have no positive examples and are left out.
    """
    from cbm.concepts.cav import fit_cavs

    usable = [j for j in range(len(bank)) if (labels[:, j] == 1).sum() >= 2 and (labels[:, j] == 0).sum() >= 2]
    bank = bank.subset(usable)
    pos, neg = (_LabelledRows(X, labels, dict(zip(bank.names, usable, strict=True)), v) for v in (1, 0))
    cavs = fit_cavs(pos, neg, method="mean_diff", random_state=seed, encoder_fingerprint=fingerprint)
    return bank.with_vectors(cavs.vectors, cavs.intercepts, encoder_fingerprint=fingerprint)


class _LabelledRows(Mapping):
    """Concept name -> the rows of ``X`` whose label for it is ``value``, selected when asked for: one
    concept's copy at a time instead of all of them at once (seconds and gigabytes at the demo's size)."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, columns: dict[str, int], value: int) -> None:
        self.X, self.labels, self.columns, self.value = X, labels, columns, value

    def __getitem__(self, name: str) -> np.ndarray:
        return self.X[self.labels[:, self.columns[name]] == self.value]

    def __iter__(self):
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


@dataclass
class DemoResult:
    config: DemoConfig
    rows: list[dict[str, Any]]
    suggestions: Any
    edit_effect: Any
    model_dir: Path
    timings: dict[str, float]
    embed_summary: str
    repairs: Any = None
    faithfulness: Any = None
    suspect: tuple[str, str] | None = None

    @property
    def chosen_edit(self) -> Any:
        """The repair chosen on the validation split (None: no edit beat leaving the model as it is)."""
        return None if self.repairs is None else self.repairs.iloc[0]["edit"]

    def report(self) -> str:
        """What the run printed: the table, the suggestions, the repair chosen on validation data, its
        measured effect with per-class recall and the baselines, and where to look."""
        sug = self.suggestions.head(5)
        lines = ["", "Accuracy (in-domain = training site, shifted = the other site) and sparsity:",
                 self.table()]
        if any(r["model"] in REFERENCE_ROWS for r in self.rows):
            lines.append("  (reference rows: trained on the same images before the tag was stamped, which a user "
                         "does not have: what undoing the confounder in training gives back)")
        lines += ["",
                 "Edit suggestions (concepts whose class evidence holds in one site only):"]
        lines += [f"  {r['class']:<12} <- {r['concept']!r} (weight {r['weight']:+.2f}, score {r['score']:.3f})"
                  for _, r in sug.iterrows()]
        if self.faithfulness is not None:
            from cbm.research.faithfulness import faithfulness_report

            lines += ["", faithfulness_report(self.faithfulness)]
        if self.repairs is not None:
            k, c = self.suspect
            lines += ["", f"Repairs of {k!r} <- {c!r}, scored on the training site's validation split only: "
                      "group-balanced accuracy (each class's images with and without the artifact, as the "
                      "model's own predictor sees it, count equally); an edit is chosen only when its gain "
                      "over no edit stays above 0 at the 90% lower bootstrap bound:",
                      f"    {'edit':<64}{'score':>7}{'±':>6}{'gain low':>9}{'worst':>7}{'val':>7}  {k} recall"]
            for r in self.repairs.itertuples():
                label = "no edit" if r.edit is None else r.edit.short_label()
                lines.append(f"  {'*' if r.chosen else ' '} {label[:63]:<64}{r.score:>7.3f}{r.score_se:>6.3f}"
                             f"{r.gain_low:>+9.3f}{r.worst_group:>7.3f}{r.val_accuracy:>7.3f}  {r.val_recall:.2f}")
            chosen = self.chosen_edit
            lines.append("Chosen edit: " + (chosen.plain() if chosen is not None else
                                            "none (no edit beat the model beyond the noise)"))
        if self.edit_effect is not None:
            lines += ["", "Its effect, measured on every split (nothing committed):", self.edit_effect.report(),
                      f"  => shifted accuracy {100 * self.edit_effect.delta('shifted'):+.1f} points"]
            if np.isfinite(self.headroom_points):
                lines.append(f"     of {self.headroom_points:+.1f} points that KnoBo trained without the tag gains "
                             "over the model (the reference row)")
        lines += ["", f"Model directory: {self.model_dir}",
                  "Timings: " + ", ".join(f"{n} {v:.1f} s" for n, v in self.timings.items()),
                  "Open it in the browser:  cbm app" + ("" if self.model_dir == default_demo_dir() / "model"
                                                       else f" {self.model_dir}")]
        return "\n".join(lines)

    @property
    def headroom_points(self) -> float:
        """Shifted-site points KnoBo trained without the tag has over the model (NaN without the reference)."""
        by = {r["model"]: r["shifted"] for r in self.rows}
        return 100 * (by.get(REFERENCE_ROWS[0], np.nan) - by["knowledge-prior CBM (KnoBo)"])

    def table(self) -> str:
        w = max(34, *(len(r["model"]) + 2 for r in self.rows))
        head = f"{'model':<{w}}{'in-domain':>10}{'shifted':>10}{'gap':>8}{'non-zero w':>12}{'NEC':>7}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['model']:<{w}}{r['in_domain']:>10.3f}{r['shifted']:>10.3f}"
                         f"{r['in_domain'] - r['shifted']:>8.3f}{r['nonzero']:>12}{r['nec']:>7.1f}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """The headline numbers (what ``benchmarks/bench_demo_robustness.py`` records)."""
        e, k = self.edit_effect, self.suspect[0] if self.suspect else self.config.confound.confounded_class
        by = {r["model"]: r for r in self.rows}
        base = {} if e is None or e.baselines is None else {
            (r.split, r.model): (r.accuracy, r.recall) for r in e.baselines.itertuples()}
        cbm = by["knowledge-prior CBM (KnoBo)"]
        after = (lambda s: e.value(s, "all", "after")) if e is not None else (lambda s: cbm[
            "in_domain" if s == "test" else "shifted"])
        rec = (lambda s, w: e.value(s, f"class={k}", w)) if e is not None else (lambda s, w: np.nan)
        return {
            "edit": self.chosen_edit.describe() if self.chosen_edit is not None else "none",
            "suspect": list(self.suspect) if self.suspect else None,
            "shifted_gain_points": 100 * (after("shifted") - cbm["shifted"]),
            "in_domain_cost_points": 100 * (cbm["in_domain"] - after("test")),
            "shifted_after": after("shifted"), "in_domain_after": after("test"),
            "black_box_shifted": by["black box (linear probe)"]["shifted"],
            "black_box_same_fix_shifted": base.get(("shifted", "black box + same fix"), (np.nan,))[0],
            "black_box_same_fix_in_domain": base.get(("test", "black box + same fix"), (np.nan,))[0],
            "never_predict_k_shifted": base.get(("shifted", f"CBM never predicts {k}"), (np.nan,))[0],
            "black_box_never_predict_k_shifted": base.get(("shifted", f"black box never predicts {k}"), (np.nan,))[0],
            "k_recall_shifted_before": rec("shifted", "before"), "k_recall_shifted_after": rec("shifted", "after"),
            "k_recall_in_domain_before": rec("test", "before"), "k_recall_in_domain_after": rec("test", "after"),
            "cbm_in_domain": cbm["in_domain"], "cbm_shifted": cbm["shifted"],
            "black_box_in_domain": by["black box (linear probe)"]["in_domain"],
            "pcbm_h_in_domain": by.get("PCBM-h (CAV concepts + residual)", {}).get("in_domain"),
            "tag_free_cbm_shifted": by.get(REFERENCE_ROWS[0], {}).get("shifted", np.nan),
            "tag_free_black_box_shifted": by.get(REFERENCE_ROWS[1], {}).get("shifted", np.nan),
            "headroom_points": self.headroom_points,
            "verdict": e.verdict() if e is not None else "no edit chosen",
            "timings": self.timings,
        }


def _sparsity(model) -> tuple[int, float]:
    W = np.asarray(model.coef_)
    nz = np.abs(W) > 1e-6
    return int(nz.sum()), float(nz.sum(1).mean())


def _row(label: str, m, X: dict[str, np.ndarray], splits: dict[str, DemoSplit], dense: bool = False) -> dict[str, Any]:
    nz, nec = _sparsity(m)
    W = np.asarray(m.coef_)
    return {"model": label, "in_domain": float(m.score(X["test"], splits["test"].y)),
            "shifted": float(m.score(X["shifted"], splits["shifted"].y)),
            "nonzero": int(W.size) if dense else nz, "nec": float(W.shape[1]) if dense else nec}


SPARSE_L1 = 0.5


def sparse_head(knobo, X: dict[str, np.ndarray], splits: dict[str, DemoSplit], l1: float = SPARSE_L1):
    """A copy of ``knobo`` with its head refitted under an L1 proximal step (exact zeros), same predictors."""
    import copy

    m = copy.deepcopy(knobo).set_params(l1=l1)
    return m.refit(X["train"], splits["train"].y, X_val=X["val"], y_val=splits["val"].y)


def fit_knobo(bank, X: dict[str, np.ndarray], splits: dict[str, DemoSplit], labels: np.ndarray, seed: int,
              verbose: bool = False):
    """The demo's KnoBo: grounded on ``labels`` (the training split's), balanced on the artifact if present,
    each concept predictor's L2 strength chosen on held-out training images."""
    from cbm.models import create_model

    knobo = create_model("knobo", concepts=bank, random_state=seed, verbose=verbose, grounding_l2="auto",
                         balance_concept=ARTIFACT if ARTIFACT in bank.names else None)
    return knobo.fit(X["train"], splits["train"].y, concept_labels=labels, X_val=X["val"], y_val=splits["val"].y)


REFERENCE_ROWS = ("reference: KnoBo trained without the tag", "reference: black box trained without the tag")


def tag_free_reference(splits: dict[str, DemoSplit], X: dict[str, np.ndarray], cfg: DemoConfig,
                       thresholds: dict[str, tuple[float, float]], progress: bool = False) -> list[dict[str, Any]]:
    """References no user has: KnoBo (without the artifact concept) and the black box trained on the same
    training-site images before the tag was stamped, scored on the same (stamped) test splits. They show how
    much the confounder costs in training; an edit that also removes the tag's effect on test images can
    do better still."""
    from cbm.models import create_model

    clean = {s: DemoSplit(images=splits[s].clean, y=splits[s].y, domains=splits[s].domains, clean=splits[s].clean,
                          stamped=np.zeros_like(splits[s].stamped), ids=np.asarray([f"tag-free/{i}" for i in splits[s].ids]))
             for s in ("train", "val")}
    embedded, _, _ = embed_splits({f"{s}-tag-free": d for s, d in clean.items()}, cfg, progress=progress)
    Xc = {s: embedded[f"{s}-tag-free"] for s in clean}  # cache entries named apart from the stamped splits
    bank = garment_concept_bank(include_artifact=False)
    labels = concept_labels(bank, _class_index(clean["train"].y), clean["train"].stamped, clean["train"].clean,
                            thresholds)
    knobo = fit_knobo(bank, Xc, clean, labels, cfg.seed)
    probe = create_model("linear-probe", random_state=cfg.seed).fit(Xc["train"], clean["train"].y)
    return [_row(REFERENCE_ROWS[0], knobo, X, splits), _row(REFERENCE_ROWS[1], probe, X, splits, dense=True)]


def run_demo(cfg: DemoConfig | None = None, *, progress: bool = True, log=print,
             pcbm: bool = True) -> DemoResult:
    """Run the whole demo; writes the KnoBo model directory (with ``data.npz``) for the app.

    ``pcbm=False`` leaves out the PCBM and PCBM-h rows (the robustness benchmark does, to save time).
    Each stage is announced through ``log`` as it starts, with the seconds since the start.
    """
    from cbm.edits import TrainingData
    from cbm.edits.preview import EvalSet, preview, suggest_edits
    from cbm.edits.repair import compare_baselines, repair_candidates, suggest_repairs
    from cbm.edits.report import record_black_box
    from cbm.io import save_model
    from cbm.models import create_model
    from cbm.research.faithfulness import concept_faithfulness
    from cbm.store import default_cache_dir

    cfg = cfg or DemoConfig()
    t: dict[str, float] = {}
    t0 = time.perf_counter()

    def step(what: str) -> None:
        log(f"[{time.perf_counter() - t0:4.0f} s] {what}")

    log(cfg.describe())
    step("building the splits: Fashion-MNIST with the planted tag")
    splits = build_splits(cfg)
    t["data_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    step("embedding the images with MobileNetV2 (cached for the next run)")
    X, encoder, embed_summary = embed_splits(splits, cfg, progress=progress)
    t["embed_s"] = time.perf_counter() - t1
    log(embed_summary)

    t2 = time.perf_counter()
    bank = (garment_concept_bank() if cfg.llm_model is None
            else llm_concept_bank(cfg.llm_model, cfg.llm_base_url, cfg.cache_dir))
    thresholds = measured_thresholds(splits["train"].clean)
    L = {s: concept_labels(bank, _class_index(splits[s].y), splits[s].stamped, splits[s].clean, thresholds)
         for s in SPLITS}
    ytr, yva = splits["train"].y, splits["val"].y
    step("training the knowledge-prior CBM (KnoBo)")
    knobo = fit_knobo(bank, X, splits, L["train"], cfg.seed, verbose=progress)
    t["train_knobo_s"] = time.perf_counter() - t2
    hybrids = {}
    if pcbm:
        step("training PCBM and PCBM-h on CAV concepts")
        cav_bank = _cav_bank(bank, X["train"], L["train"], encoder.fingerprint, cfg.seed)
        for name in ("pcbm", "pcbm-h"):
            hybrids[name] = create_model(name, concepts=cav_bank, random_state=cfg.seed,
                                         verbose=progress).fit(X["train"], ytr)
        t["train_pcbm_s"] = time.perf_counter() - t2 - t["train_knobo_s"]
    step("training the black box (linear probe)")
    probe = create_model("linear-probe", random_state=cfg.seed).fit(X["train"], ytr)
    t["train_s"] = time.perf_counter() - t2

    rows = [_row("black box (linear probe)", probe, X, splits, dense=True)]
    if hybrids:
        rows += [_row("PCBM (CAV concepts)", hybrids["pcbm"], X, splits),
                 _row("PCBM-h (CAV concepts + residual)", hybrids["pcbm-h"], X, splits)]
    rows.append(_row("knowledge-prior CBM (KnoBo)", knobo, X, splits))
    if pcbm:
        step("training KnoBo's sparse head, then LaBo, LF-CBM, Sparse-CBM and CMS through the offline CLIP "
             "stand-in")
        rows.append(_row(f"KnoBo, sparse head (l1={SPARSE_L1:g})", sparse_head(knobo, X, splits), X, splits))
        t4 = time.perf_counter()
        rows += text_scored_rows(bank, splits, X, encoder, cfg)
        t["train_text_methods_s"] = time.perf_counter() - t4
    if cfg.tag_free_reference and cfg.llm_model is None:
        t5 = time.perf_counter()
        step("training the tag-free reference (KnoBo and the black box on images without the tag)")
        rows += tag_free_reference(splits, X, cfg, thresholds, progress=progress)
        t["reference_s"] = time.perf_counter() - t5

    t3 = time.perf_counter()
    step("suggesting edits, measuring faithfulness and searching for a repair of the tagged class")
    base_cols = [bank.index(n) for n in knobo.base_concepts_.names]
    L_base = {s: L[s][:, base_cols] for s in ("train", "val")}  # columns of the grounded concepts
    evalsets = {s: EvalSet.from_model(knobo, X[s], splits[s].y, s, splits[s].domains, splits[s].ids)
                for s in ("val", "test", "shifted")}
    suggestions = suggest_edits(knobo, evalsets, top=5)
    faith = concept_faithfulness(knobo, X["val"], yva, L["val"], bank,
                                 nuisance=splits["val"].stamped if ARTIFACT in bank.names else None)
    effect, repairs, suspect = None, None, None
    if ARTIFACT in knobo.concept_names_:
        # the artifact is a known nuisance concept; the class leaning on it most is the suspect
        j = knobo.concept_names_.index(ARTIFACT)
        suspect = (knobo.class_names_[int(np.argmax(knobo.coef_[:, j]))], ARTIFACT)
        data = TrainingData(X["train"], ytr, L_base["train"], X["val"], yva)
        # the repair at the source re-embeds the images (kept in the cache for the next run); refitting the
        # head on repaired training images is left to the library and the benchmark: it re-embeds all of them
        images = {s: splits[s].images for s in ("val", "test", "shifted")}
        candidates = repair_candidates(knobo, *suspect, data=data, images=images, encoder=encoder,
                                       cache_dir=(cfg.cache_dir or default_cache_dir()) / "source-repair")
        repairs = suggest_repairs(knobo, evalsets["val"], *suspect, data=data, candidates=candidates)
        chosen = repairs.iloc[0]["edit"]
        if chosen is not None:
            effect = preview(knobo, chosen, evalsets)
            effect.baselines = compare_baselines(knobo, chosen, evalsets, probe, data, cls=suspect[0])
    t["repair_s"] = time.perf_counter() - t3

    fingerprints = {
        "encoder": encoder.spec,
        "data": {"name": "fashion-mnist (confounded demo)", "config": _jsonable(asdict(cfg))},
    }
    metrics = {"rows": rows, "edit_preview": None if effect is None else effect.accuracy.to_dict("records")}
    step(f"saving the model directories under {cfg.out_dir}")
    cfg.model_dir.mkdir(parents=True, exist_ok=True)
    save_model(knobo, cfg.model_dir, note="cbm demo: knowledge-prior CBM", metrics=metrics,
               fingerprints=fingerprints)
    kept = [bank.index(n) for n in knobo.concept_names_]  # the saved model's concepts, in its order
    write_eval_data(cfg.model_dir / "data.npz", splits, X, labels=L_base, concepts={s: L[s][:, kept] for s in L})
    for name, m in (*hybrids.items(), ("linear-probe", probe)):
        save_model(m, cfg.out_dir / "models" / name, note=f"cbm demo: {name}", fingerprints=fingerprints)
    record_black_box(cfg.model_dir, cfg.out_dir / "models" / "linear-probe")  # what the app compares edits with
    t["total_s"] = time.perf_counter() - t0
    step("done")
    return DemoResult(cfg, rows, suggestions, effect, cfg.model_dir, t, embed_summary, repairs, faith, suspect)


def text_scored_rows(bank, splits: dict[str, DemoSplit], X: dict[str, np.ndarray], encoder,
                     cfg: DemoConfig) -> list[dict[str, Any]]:
    """LaBo, Label-free CBM, Sparse-CBM and CMS on the same images, through the offline CLIP stand-in
    (:mod:`cbm.demo.text_methods`): rows for the accuracy table."""
    from cbm.demo.text_methods import LABELS, text_method_models
    from cbm.encoders import create_encoder

    garments = bank.subset([j for j, n in enumerate(bank.names) if n != ARTIFACT])
    ytr = splits["train"].y
    minilm = create_encoder("minilm")
    alignment = cached_standin(X["train"], ytr, garments, cfg, encoder.fingerprint, minilm)
    models = text_method_models(alignment, X["train"], ytr, garments, CLASSES, seed=cfg.seed,
                                text_encoder=minilm)
    Z = {s: alignment.project(X[s]) for s in ("test", "shifted")}
    return [_row(LABELS[method], model, Z, splits) for method, model in models.items()]


def cached_standin(X_train: np.ndarray, y_train: np.ndarray, garments, cfg: DemoConfig, image_fingerprint: str,
                   text_encoder):
    """The stand-in's alignment, fitted once per training set and kept beside the embedding cache
    (``text-alignment/<content hash>``): a warm run loads it instead of refitting."""
    import hashlib

    from cbm.demo.text_methods import fit_standin
    from cbm.encoders import EncoderLoadError
    from cbm.encoders.aligned import TextAlignment
    from cbm.store import EmbeddingStore

    h = hashlib.sha256(np.ascontiguousarray(X_train, np.float32).tobytes())
    for part in (*map(str, y_train), *garments.names, *garments.texts, image_fingerprint,
                 text_encoder.fingerprint, str(cfg.seed), str(cfg.image_size)):
        h.update(part.encode() + b"\0")
    folder = EmbeddingStore(cfg.cache_dir).root / "text-alignment" / h.hexdigest()[:32]
    try:
        return TextAlignment.load(folder)
    except EncoderLoadError:
        alignment = fit_standin(X_train, y_train, garments, CLASSES,
                                {"name": "mobilenet_v2", "image_size": cfg.image_size}, image_fingerprint,
                                seed=cfg.seed, text_encoder=text_encoder)
        alignment.save(folder)
        return alignment


def _class_index(y: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(CLASSES)}
    return np.array([lookup[c] for c in y], dtype=np.int64)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else _jsonable(v) if isinstance(v, dict) else v)
            for k, v in d.items()}
