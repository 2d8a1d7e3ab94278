"""The planted confounder: where the tag goes and how often."""

import numpy as np
import pytest

from cbm.demo.confound import ConfoundConfig, draw_tags, stamp


def test_stamp_marks_only_the_chosen_images_in_the_chosen_corner():
    images = np.zeros((3, 28, 28), np.uint8)
    out = stamp(images, np.array([True, False, True]), ConfoundConfig(tag_size=4, corner="bottom-right"))
    assert out[0, -5:-1, -5:-1].min() == 255 and out[0].sum() == 255 * 16
    assert out[1].sum() == 0
    assert images.sum() == 0  # the input is left alone


def test_tag_rates_follow_the_site():
    cfg = ConfoundConfig()
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 2000)
    train, shifted = draw_tags(y, 6, "train", cfg, rng), draw_tags(y, 6, "shifted", cfg, rng)
    assert train[y == 6].mean() == pytest.approx(cfg.rate_class_train, abs=0.03)
    assert train[y != 6].mean() == pytest.approx(cfg.rate_other_train, abs=0.02)
    assert shifted[y == 6].mean() == pytest.approx(cfg.rate_class_shift, abs=0.02)
    assert shifted[y != 6].mean() == pytest.approx(cfg.rate_other_shift, abs=0.03)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("rate_class_train", 1.5, "probability"),
    ("corner", "middle", "top-left"),
    ("tag_size", 0, "1..14"),
])
def test_bad_config_is_refused_with_the_allowed_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        ConfoundConfig(**{field: value})


def test_unknown_site_is_refused():
    with pytest.raises(ValueError, match="'train' or 'shifted'"):
        draw_tags(np.zeros(3), 0, "elsewhere", ConfoundConfig(), np.random.default_rng(0))
