"""A planted confounder in the spirit of KnoBo's confounded medical datasets.

A small bright tag (a hospital's marker on a scan) is stamped into image corners. In the
training "site" most images of one class carry it and few others do; in the shifted site the
association is reversed: that class never carries it and most of the others do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ConfoundConfig:
    """Where, how often and how the tag is stamped. Defaults are printed by ``cbm demo``."""

    confounded_class: str = "Shirt"
    tag_size: int = 6
    tag_value: int = 255
    corner: str = "top-left"
    rate_class_train: float = 0.95   # P(tag | confounded class) in the training site
    rate_other_train: float = 0.05   # P(tag | other classes) in the training site
    rate_class_shift: float = 0.0    # P(tag | confounded class) in the shifted site
    rate_other_shift: float = 0.8    # P(tag | other classes) in the shifted site

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if k.startswith("rate_") and not 0.0 <= v <= 1.0:
                raise ValueError(f"ConfoundConfig.{k} must be a probability in [0, 1]; got {v!r}.")
        if self.corner not in ("top-left", "top-right", "bottom-left", "bottom-right"):
            raise ValueError(f"ConfoundConfig.corner must be one of top-left, top-right, "
                             f"bottom-left, bottom-right; got {self.corner!r}.")
        if not 1 <= self.tag_size <= 14:
            raise ValueError(f"ConfoundConfig.tag_size must be 1..14 pixels; got {self.tag_size!r}.")

    def describe(self) -> str:
        return (
            f"tag {self.tag_size}x{self.tag_size} px ({self.corner}) on {self.rate_class_train:.0%} of "
            f"{self.confounded_class!r} and {self.rate_other_train:.0%} of other images in the training site; "
            f"on {self.rate_class_shift:.0%} of {self.confounded_class!r} and {self.rate_other_shift:.0%} of "
            "others in the shifted site"
        )


def stamp(images: np.ndarray, mask: np.ndarray, cfg: ConfoundConfig) -> np.ndarray:
    """Copy of ``images`` (N, H, W) uint8 with the tag stamped where ``mask`` is true."""
    out = np.array(images, copy=True)
    s = cfg.tag_size
    rows = slice(1, 1 + s) if cfg.corner.startswith("top") else slice(-1 - s, -1)
    cols = slice(1, 1 + s) if cfg.corner.endswith("left") else slice(-1 - s, -1)
    out[np.asarray(mask, bool), rows, cols] = cfg.tag_value
    return out


def draw_tags(y: np.ndarray, class_index: int, site: str, cfg: ConfoundConfig,
              rng: np.random.Generator) -> np.ndarray:
    """Which images of a site get the tag (boolean, N)."""
    if site not in ("train", "shifted"):
        raise ValueError(f"site must be 'train' or 'shifted'; got {site!r}.")
    p_cls = cfg.rate_class_train if site == "train" else cfg.rate_class_shift
    p_oth = cfg.rate_other_train if site == "train" else cfg.rate_other_shift
    p = np.where(np.asarray(y) == class_index, p_cls, p_oth)
    return rng.random(len(p)) < p
