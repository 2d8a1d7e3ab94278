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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm.demo.confound import ConfoundConfig, draw_tags, stamp
from cbm.demo.garments import ARTIFACT, CLASSES, concept_labels, garment_concept_bank

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
    """One split: stamped images, labels (class names), site, tag flags and ids."""

    images: np.ndarray
    y: np.ndarray
    domains: np.ndarray
    stamped: np.ndarray
    ids: np.ndarray


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
                    include: tuple[str, ...] = ("val", "test", "shifted")) -> Path:
    """The app's evaluation file: X, labels, site, ids, images and tag flags per split."""
    from cbm.edit_eval import save_eval_data

    return save_eval_data(path, {
        name: {"X": X[name], "y": splits[name].y, "domains": splits[name].domains, "ids": splits[name].ids,
               "images": splits[name].images, "stamped": splits[name].stamped}
        for name in include
    }, class_names=CLASSES)


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
    pos = {n: X[labels[:, j] == 1] for n, j in zip(bank.names, usable, strict=True)}
    neg = {n: X[labels[:, j] == 0] for n, j in zip(bank.names, usable, strict=True)}
    cavs = fit_cavs(pos, neg, method="mean_diff", random_state=seed, encoder_fingerprint=fingerprint)
    return bank.with_vectors(cavs.vectors, cavs.intercepts, encoder_fingerprint=fingerprint)


@dataclass
class DemoResult:
    config: DemoConfig
    rows: list[dict[str, Any]]
    suggestions: Any
    edit_effect: Any
    model_dir: Path
    timings: dict[str, float]
    embed_summary: str

    def report(self) -> str:
        """What the run printed: the table, the suggestions, the edit's measured effect, where to look."""
        k = self.config.confound.confounded_class
        sug = self.suggestions.head(5)
        lines = ["", "Accuracy (in-domain = training site, shifted = the other site) and sparsity:",
                 self.table(), "",
                 "Edit suggestions (concepts whose class evidence holds in one site only):"]
        lines += [f"  {r['class']:<12} <- {r['concept']!r} (weight {r['weight']:+.2f}, score {r['score']:.3f})"
                  for _, r in sug.iterrows()]
        lines += ["", f"Global edit, previewed on cached activations (no retraining, no new data): prune "
                  f"{ARTIFACT!r} from {k!r}", self.edit_effect.report(),
                  f"  => shifted accuracy {100 * self.edit_effect.delta('shifted'):+.1f} points",
                  "", f"Model directory: {self.model_dir}",
                  "Timings: " + ", ".join(f"{n} {v:.1f} s" for n, v in self.timings.items()),
                  "Open it in the browser:  cbm app" + ("" if self.model_dir == default_demo_dir() / "model"
                                                       else f" {self.model_dir}")]
        return "\n".join(lines)

    def table(self) -> str:
        head = f"{'model':<28}{'in-domain':>10}{'shifted':>10}{'gap':>8}{'non-zero w':>12}{'NEC':>7}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['model']:<28}{r['in_domain']:>10.3f}{r['shifted']:>10.3f}"
                         f"{r['in_domain'] - r['shifted']:>8.3f}{r['nonzero']:>12}{r['nec']:>7.1f}")
        return "\n".join(lines)


def _sparsity(model) -> tuple[int, float]:
    W = np.asarray(model.coef_)
    nz = np.abs(W) > 1e-6
    return int(nz.sum()), float(nz.sum(1).mean())


def run_demo(cfg: DemoConfig | None = None, *, progress: bool = True, log=print) -> DemoResult:
    """Run the whole demo; writes the KnoBo model directory (with ``data.npz``) for the app."""
    from cbm.edit_eval import EvalSet, preview, suggest_edits
    from cbm.edits import Prune
    from cbm.io import save_model
    from cbm.models import create_model

    cfg = cfg or DemoConfig()
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    log(cfg.describe())
    splits = build_splits(cfg)
    t["data_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    X, encoder, embed_summary = embed_splits(splits, cfg, progress=progress)
    t["embed_s"] = time.perf_counter() - t1
    log(embed_summary)

    t2 = time.perf_counter()
    bank = (garment_concept_bank() if cfg.llm_model is None
            else llm_concept_bank(cfg.llm_model, cfg.llm_base_url, cfg.cache_dir))
    L = {s: concept_labels(bank, _class_index(splits[s].y), splits[s].stamped) for s in ("train", "val")}
    ytr, yva = splits["train"].y, splits["val"].y
    knobo = create_model("knobo", concepts=bank, random_state=cfg.seed, verbose=progress)
    knobo.fit(X["train"], ytr, concept_labels=L["train"], X_val=X["val"], y_val=yva)
    t["train_knobo_s"] = time.perf_counter() - t2
    cav_bank = _cav_bank(bank, X["train"], L["train"], encoder.fingerprint, cfg.seed)
    pcbm = create_model("pcbm", concepts=cav_bank, random_state=cfg.seed, verbose=progress)
    pcbm.fit(X["train"], ytr)
    t["train_pcbm_s"] = time.perf_counter() - t2 - t["train_knobo_s"]
    probe = create_model("linear-probe", random_state=cfg.seed).fit(X["train"], ytr)
    t["train_s"] = time.perf_counter() - t2

    rows = []
    for label, m in (("black box (linear probe)", probe), ("PCBM (CAV concepts)", pcbm),
                     ("knowledge-prior CBM (KnoBo)", knobo)):
        nz, nec = _sparsity(m)
        rows.append({"model": label, "in_domain": float(m.score(X["test"], splits["test"].y)),
                     "shifted": float(m.score(X["shifted"], splits["shifted"].y)),
                     "nonzero": nz if m is not probe else int(np.asarray(m.coef_).size),
                     "nec": nec if m is not probe else float(np.asarray(m.coef_).shape[1])})

    evalsets = {s: EvalSet.from_model(knobo, X[s], splits[s].y, s, splits[s].domains, splits[s].ids)
                for s in ("val", "test", "shifted")}
    suggestions = suggest_edits(knobo, evalsets, top=5)
    effect = preview(knobo, Prune(cfg.confound.confounded_class, ARTIFACT), evalsets)

    fingerprints = {
        "encoder": {"name": "mobilenet_v2", "pretrained": None, "image_size": cfg.image_size,
                    "fingerprint": encoder.fingerprint},
        "data": {"name": "fashion-mnist (confounded demo)", "config": _jsonable(asdict(cfg))},
    }
    metrics = {"rows": rows, "edit_preview": effect.accuracy.to_dict("records")}
    cfg.model_dir.mkdir(parents=True, exist_ok=True)
    save_model(knobo, cfg.model_dir, note="cbm demo: knowledge-prior CBM", metrics=metrics,
               fingerprints=fingerprints)
    write_eval_data(cfg.model_dir / "data.npz", splits, X)
    for name, m in (("pcbm", pcbm), ("linear-probe", probe)):
        save_model(m, cfg.out_dir / "models" / name, note=f"cbm demo: {name}", fingerprints=fingerprints)
    t["total_s"] = time.perf_counter() - t0
    return DemoResult(cfg, rows, suggestions, effect, cfg.model_dir, t, embed_summary)


def _class_index(y: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(CLASSES)}
    return np.array([lookup[c] for c in y], dtype=np.int64)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else _jsonable(v) if isinstance(v, dict) else v)
            for k, v in d.items()}
