"""Fashion-MNIST (Zalando, MIT licence), read offline from the idx ``.gz`` files.

Files are looked for in ``root``, ``$CBM_FASHION_MNIST``, Debian's ``dataset-fashion-mnist``
package (``/usr/share/datasets/fashion-mnist``) and ``~/.cache/cbmkit/fashion-mnist``; only when
none has them and ``download=True`` is torchvision's downloader used (needs internet)::

    train = load_fashion_mnist("train")              # ImageDataset, 60000 x 28 x 28 uint8
    test = load_fashion_mnist("test", limit=500)     # first 500 test images
    train.classes[train.labels[0]]                   # 'Ankle boot'
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from cbm.data.folders import ImageDataset
from cbm.exceptions import DataError
from cbm.store import default_cache_dir

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def search_dirs(root: str | Path | None = None) -> list[Path]:
    """Folders searched for the idx files, in order."""
    dirs = [Path(root).expanduser()] if root is not None else []
    if os.environ.get("CBM_FASHION_MNIST"):
        dirs.append(Path(os.environ["CBM_FASHION_MNIST"]).expanduser())
    cache = default_cache_dir()
    return dirs + [SYSTEM_DIR, cache / "fashion-mnist", cache / "fashion-mnist" / "FashionMNIST" / "raw"]


@lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"Cannot read idx file {path!r} ({e}); it is truncated or not gzip. "
                        "Re-install or re-download it.") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path!r} is not an idx file of unsigned bytes (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"idx file {path!r} holds {body.size} values, its header says {shape}; "
                        "the file is truncated. Re-install or re-download it.")
    out = body.reshape(shape)
    out.flags.writeable = False
    return out


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally ``.gz``) into a uint8 array; cached per process."""
    path = Path(path)
    return _read_idx_cached(str(path), path.stat().st_mtime_ns)


def _find(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / f"{name}.gz", d / name):
            if cand.is_file():
                return cand
    return None


def load_fashion_mnist(split: str = "train", root: str | Path | None = None, *,
                       limit: int | None = None, download: bool = False) -> ImageDataset:
    """Fashion-MNIST ``split`` ("train": 60000 images, "test": 10000) as an ImageDataset.

    Parameters
    ----------
    split : {"train", "test"}
    root : path, optional
        Folder with the four idx files (searched first).
    limit : int, optional
        Keep only the first ``limit`` images (fast experiments).
    download : bool
        Fetch with torchvision when the files are nowhere local (needs internet).
    """
    if split not in _FILES:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test'; got {split!r}.")
    dirs = search_dirs(root)
    img_name, lab_name = _FILES[split]
    img_path, lab_path = _find(img_name, dirs), _find(lab_name, dirs)
    if (img_path is None or lab_path is None) and download:
        from torchvision.datasets import FashionMNIST

        target = dirs[-2]
        FashionMNIST(str(target), train=split == "train", download=True)
        img_path, lab_path = _find(img_name, dirs), _find(lab_name, dirs)
    if img_path is None or lab_path is None:
        raise DataError(
            f"Fashion-MNIST {split} files ({img_name}.gz, {lab_name}.gz) not found in "
            f"{', '.join(str(d) for d in dirs)}. Install Debian's package (apt-get install "
            "dataset-fashion-mnist), point $CBM_FASHION_MNIST or root= at a folder with the idx "
            "files, or pass download=True when online.")
    images, labels = read_idx(img_path), read_idx(lab_path).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{str(img_path)!r} and {str(lab_path)!r} do not match: images {images.shape}, "
                        f"labels {labels.shape}.")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageDataset(images=images, labels=labels, classes=list(CLASSES),
                        ids=[f"{split}/{i}" for i in range(len(images))], name=f"fashion-mnist-{split}")
