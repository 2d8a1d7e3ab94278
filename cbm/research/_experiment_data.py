"""Data, encoder and concepts of an experiment config, turned into embeddings, splits and a bank.

Private to :mod:`cbm.research.experiment`. Each ``[data] source`` has one loader; images are embedded through
the :class:`~cbm.store.EmbeddingStore` cache, so repeated runs and grid points embed once. Anything
missing on disk (dataset, weights, concept file) is reported up front with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm.exceptions import DataError

SOURCES = ("synthetic", "npz", "store", "images", "torchvision", "cub", "fashion-mnist")


@dataclass
class Prepared:
    """Embedded splits ``{name: {"X", "y", "ids"?}}``, concepts and annotations of one config."""

    splits: dict[str, dict[str, np.ndarray]]
    bank: Any = None
    annotations: dict[str, Any] = field(default_factory=dict)
    class_embeddings: np.ndarray | None = None
    fingerprint: Any = None
    info: dict[str, Any] = field(default_factory=dict)


#: The ``[data]`` keys each source needs (one of each tuple); image sources also need an [encoder] name.
_NEEDS = {"npz": ("path",), "store": ("path",), "images": ("train", "root"), "torchvision": ("root",),
          "cub": ("root",)}


def check_source(cfg: dict[str, Any]) -> None:
    """Raise one :class:`~cbm.exceptions.DataError` when ``[data]`` names a source the run cannot load:
    an unknown source, a missing key it needs, or images without an [encoder] name."""
    from cbm.exceptions import unknown_name_message

    data = cfg.get("data") or {}
    src = data.get("source")
    if src not in SOURCES:
        raise DataError("[data] source: " + unknown_name_message("data source", str(src), SOURCES))
    needs = _NEEDS.get(src, ())
    if needs and not any(k in data for k in needs):
        raise DataError(f"[data] source = {src!r} needs " + " or ".join(f"{k} = PATH" for k in needs) +
                        " in [data].")
    if src not in ("synthetic", "npz", "store") and "name" not in (cfg.get("encoder") or {}):
        raise DataError(f"[data] source = {src!r} needs an [encoder] name "
                        "(e.g. 'openclip:ViT-B-32' with pretrained = PATH, or 'mobilenet_v2').")


def check_paths(cfg: dict[str, Any], base: Path) -> list[str]:
    """Problems with files the config needs (dataset, weights, concept file), as messages; [] when fine.

    A data source the run cannot load at all raises :class:`~cbm.exceptions.DataError` (:func:`check_source`).
    """
    check_source(cfg)
    data, enc, con = cfg["data"], cfg.get("encoder") or {}, cfg.get("concepts") or {}
    problems = []
    src = data.get("source")
    for key in ("root", "path", "train", "test"):
        if key in data and not resolve(data[key], base).exists():
            problems.append(f"[data] {key} = {data[key]!r} ({src}) not found at {str(resolve(data[key], base))!r}: "
                            f"{_HOW.get(src, 'put the dataset there or change the path')}")
    pre = enc.get("pretrained")
    if pre and pre != "random" and _looks_like_path(pre) and not resolve(pre, base).exists():
        problems.append(f"[encoder] pretrained = {pre!r} not found at {str(resolve(pre, base))!r}: download the "
                        "checkpoint (e.g. open_clip's release) to that path; nothing is fetched at run time")
    if con.get("path") and not resolve(con["path"], base).exists():
        problems.append(f"[concepts] path = {con['path']!r} not found at {str(resolve(con['path'], base))!r}")
    return problems


_HOW = {
    "cub": "download CUB_200_2011.tgz (Caltech) and unpack it so that ROOT/images and ROOT/attributes exist",
    "torchvision": "download the dataset once with torchvision (download=True) into that folder",
    "images": "put images in <folder>/<class name>/<image>",
    "fashion-mnist": "install Debian's dataset-fashion-mnist or put the idx files there",
}


def _looks_like_path(s: str) -> bool:
    return "/" in s or s.endswith((".pt", ".bin", ".safetensors", ".pth"))


def resolve(p: str, base: Path) -> Path:
    """``p`` with ``~`` expanded, relative to the config file's folder."""
    path = Path(str(p)).expanduser()
    return path if path.is_absolute() else (base / path)


def prepare(cfg: dict[str, Any], seed: int, base: Path) -> Prepared:
    """Load and embed the data of a resolved config for ``seed``."""
    src = cfg["data"].get("source")
    problems = check_paths(cfg, base)  # an unloadable source raises here, as in `cbm run --check`
    if problems:
        raise DataError("This experiment needs files that are not here:\n  - " + "\n  - ".join(problems))
    if src == "synthetic":
        return _synthetic(cfg, seed)
    if src in ("npz", "store"):
        from cbm.data import load_training_data

        splits, extras = load_training_data(resolve(cfg["data"]["path"], base), seed)
        prep = Prepared(splits, extras.get("bank"), {}, extras.get("class_embeddings"), extras.get("fingerprint"))
        return _with_concepts(prep, cfg, base, encoder=None)
    encoder = _encoder(cfg)
    datasets, annotations = _image_datasets(cfg, base, seed)
    splits = {name: _embed(encoder, ds, cfg) for name, ds in datasets.items()}
    prep = Prepared(splits, None, {}, None, getattr(encoder, "fingerprint", None),
                    {"classes": list(next(iter(datasets.values())).classes)})
    if annotations is not None:
        prep.annotations = {n: annotations.for_ids(s["ids"]) for n, s in splits.items()}
    return _with_concepts(prep, cfg, base, encoder=encoder)


def _synthetic(cfg: dict[str, Any], seed: int) -> Prepared:
    from cbm.data import make_concept_world
    from cbm.research.annotations import from_array

    params = dict(cfg["data"].get("params") or {})
    params.setdefault("random_state", seed)
    world = make_concept_world(**params)
    splits = {n: {"X": s.X, "y": s.y, "domains": s.domains, "ids": np.asarray([f"{n}/{i}" for i in range(len(s))])}
              for n, s in world.splits.items()}
    anns = {n: from_array(s.concepts, world.bank.names, splits[n]["ids"], source="synthetic")
            for n, s in world.splits.items()}
    return Prepared(splits, world.bank, anns, world.class_embeddings, world.encoder_fingerprint,
                    {"classes": world.class_names, "spurious_class": world.spurious_class})


def _encoder(cfg: dict[str, Any]) -> Any:
    from cbm.encoders import create_encoder

    enc = dict(cfg.get("encoder") or {})
    if "name" not in enc:
        raise DataError(f"[data] source = {cfg['data']['source']!r} needs an [encoder] name "
                        "(e.g. 'openclip:ViT-B-32' with pretrained = PATH, or 'mobilenet_v2').")
    name, pretrained = enc.pop("name"), enc.pop("pretrained", None)
    enc.pop("batch_size", None)
    return create_encoder(name, pretrained=pretrained, **enc)


def _embed(encoder: Any, dataset: Any, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    import warnings

    from cbm.store import EmbeddingStore

    enc = cfg.get("encoder") or {}
    store = EmbeddingStore(cfg.get("cache_dir"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped")
        cache = store.get_or_compute(encoder, dataset, batch_size=int(enc.get("batch_size", 64)), progress=False)
    y = cache.labels
    return {"X": cache.as_array(np.float32), "y": np.asarray([dataset.classes[i] for i in y]),
            "ids": np.asarray(cache.ids)}


def _image_datasets(cfg: dict[str, Any], base: Path, seed: int) -> tuple[dict[str, Any], Any]:
    """``{"train": ImageDataset, "test": ...}`` and, for CUB, its attribute annotations."""
    from cbm.data import image_folder, load_fashion_mnist
    from cbm.data.folders import ImageDataset

    data, src = cfg["data"], cfg["data"]["source"]
    limit = data.get("limit")
    if src == "images":
        if "train" in data:
            out = {"train": image_folder(resolve(data["train"], base))}
            if "test" in data:
                out["test"] = image_folder(resolve(data["test"], base))
            return out, None
        return {"all": image_folder(resolve(data["root"], base))}, None
    if src == "fashion-mnist":
        root = resolve(data["root"], base) if "root" in data else None
        return {s: load_fashion_mnist(s, root, limit=limit) for s in ("train", "test")}, None
    if src == "torchvision":
        import torchvision

        name = data.get("name", "CIFAR10")
        cls = getattr(torchvision.datasets, name, None)
        if cls is None:
            raise DataError(f"[data] name = {name!r} is not a torchvision dataset (e.g. 'CIFAR10', 'CIFAR100').")
        out = {}
        for split, train in (("train", True), ("test", False)):
            try:
                ds = cls(str(resolve(data["root"], base)), train=train, download=False)
            except RuntimeError as e:
                raise DataError(f"torchvision {name} not found under {data['root']!r} ({e}); download it once "
                                "with torchvision (download=True) on a machine with internet.") from None
            imgs, labels = np.asarray(ds.data), np.asarray(ds.targets)
            if limit:
                imgs, labels = imgs[:limit], labels[:limit]
            out[split] = ImageDataset(images=imgs, labels=labels, classes=list(ds.classes), name=f"{name}-{split}",
                                      ids=[f"{split}/{i}" for i in range(len(labels))])
        return out, None
    return _cub(resolve(data["root"], base), limit)


def _cub(root: Path, limit: int | None) -> tuple[dict[str, Any], Any]:
    from cbm.data import image_folder
    from cbm.research.annotations import read_cub

    ann = read_cub(root)
    base = Path(ann.metadata["root"])
    images = {int(a): b for a, b in (ln.split(maxsplit=1) for ln in (base / "images.txt").read_text().splitlines()
                                     if ln.strip())}
    is_train = {int(a): b.strip() == "1" for a, b in (ln.split() for ln in
                (base / "train_test_split.txt").read_text().splitlines() if ln.strip())}
    train_ids = {images[i] for i, t in is_train.items() if t}
    full = image_folder(base / "images")
    out = {}
    for name, want in (("train", True), ("test", False)):
        idx = [i for i, rid in enumerate(full.ids) if (rid in train_ids) == want]
        out[name] = full.subset(idx[:limit] if limit else idx)
    return out, ann


def _with_concepts(prep: Prepared, cfg: dict[str, Any], base: Path, encoder: Any) -> Prepared:
    """The concept bank from ``[concepts]``: the data's own, a saved bank, or a text file embedded."""
    con = cfg.get("concepts") or {}
    source = con.get("source", "data")
    if source == "data":
        if prep.bank is None and cfg["method"]["name"] not in ("linear-probe",):
            raise DataError("[concepts] source = 'data' but this data comes with no concept bank; set "
                            "[concepts] source = 'bank' (a ConceptBank folder) or 'file' (one concept per line).")
        return prep
    path = resolve(con["path"], base)
    if source == "bank":
        from cbm.bank import ConceptBank

        prep.bank = ConceptBank.load(path)
        return prep
    if source != "file":
        raise DataError(f"[concepts] source must be 'data', 'bank' or 'file'; got {source!r}.")
    from cbm.concepts import load_concepts
    from cbm.concepts.text import embed_bank

    bank = load_concepts(path)
    if con.get("max_concepts"):
        bank = bank.subset(range(min(int(con["max_concepts"]), len(bank))))
    if encoder is None:
        raise DataError("[concepts] source = 'file' needs an [encoder] with a text tower to embed the concepts.")
    prep.bank = embed_bank(bank, encoder, con.get("template", "{}"))
    if prep.info.get("classes") and con.get("class_template"):
        from cbm.concepts.text import encode_texts

        tpl = con["class_template"]
        prep.class_embeddings = encode_texts(encoder, [tpl.format(c) for c in prep.info["classes"]])
    return prep
