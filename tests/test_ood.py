"""Out-of-distribution scores: Mahalanobis distance with a threshold calibrated on validation."""

import numpy as np
import pytest

from cbm.exceptions import DataError
from cbm.ood import SCALE, OODDetector, describe_score, fit_ood, image_level


def test_threshold_flags_at_most_the_asked_share_of_calibration_images():
    rng = np.random.default_rng(0)
    centre = np.full(20, 3.0)
    train, val = rng.standard_normal((400, 20)) + centre, rng.standard_normal((200, 20)) + centre
    for normalize in (True, False):
        det = OODDetector(flag_rate=0.05, normalize=normalize).fit(train, val)
        assert det.is_outlier(val).mean() <= 0.05
        far = rng.standard_normal((50, 20)) - centre  # the opposite direction
        assert det.is_outlier(far).mean() > 0.9


def test_normalized_scores_ignore_the_length_of_an_embedding():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 10)) + 4
    det = OODDetector().fit(X)
    np.testing.assert_allclose(det.score(X[:5] * 7), det.score(X[:5]), rtol=1e-4)


def test_save_load_round_trip_and_clear_errors(tmp_path):
    rng = np.random.default_rng(1)
    det = fit_ood({"train": rng.standard_normal((100, 8)), "val": rng.standard_normal((50, 8))})
    back = OODDetector.load(det.save(tmp_path / "ood.npz"))
    X = rng.standard_normal((5, 8))
    np.testing.assert_allclose(back.score(X), det.score(X), rtol=1e-6)
    assert back.threshold_ == det.threshold_
    with pytest.raises(DataError, match="8"):
        det.score(rng.standard_normal((2, 9)))
    with pytest.raises(DataError, match="not fitted"):
        OODDetector().score(X)
    with pytest.raises(DataError, match="'train'"):
        fit_ood({"shifted": X})
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="bad.npz"):
        OODDetector.load(tmp_path / "bad.npz")


def test_without_a_training_split_validation_and_test_are_split_in_halves():
    rng = np.random.default_rng(3)
    val, test = rng.standard_normal((100, 6)) + 3, rng.standard_normal((100, 6)) + 3
    det = fit_ood({"val": val, "test": test, "shifted": rng.standard_normal((50, 6)) - 3})
    assert det.is_outlier(np.r_[val, test]).mean() <= 0.1
    assert det.is_outlier(rng.standard_normal((20, 6)) - 3).all()


def _photos(n: int, rng: np.random.Generator) -> list:
    """Colour 'photographs' made up here: smooth colour gradients with a few bright discs."""
    from PIL import Image, ImageDraw

    out = []
    for _ in range(n):
        yy, xx = np.mgrid[0:96, 0:96] / 95
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = (xx * rng.random() + yy * rng.random())[..., None] / 2
        im = Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x, y, r = rng.integers(0, 96, 2).tolist() + [int(rng.integers(5, 25))]
            d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 256, 3).tolist()))
        out.append(im)
    return out


@pytest.mark.slow
def test_separates_fashion_mnist_from_noise_and_photographs():
    """AUROC >= 0.95 on MobileNetV2 embeddings: real Fashion-MNIST (in) vs noise and photographs (out)."""
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    from cbm.data import load_fashion_mnist
    from cbm.encoders import create_encoder

    try:
        fm = load_fashion_mnist("train", limit=400)
        fm_test = load_fashion_mnist("test", limit=60)
        enc = create_encoder("mobilenet_v2", image_size=64)
    except (DataError, ValueError, ImportError) as e:
        pytest.skip(f"Fashion-MNIST or the MobileNetV2 weights are not installed ({e})")
    rng = np.random.default_rng(0)
    X = enc.encode_images([Image.fromarray(a) for a in fm.images])
    det = OODDetector().fit(X[:300], X[300:])
    inside = det.score(enc.encode_images([Image.fromarray(a) for a in fm_test.images]))
    noise = det.score(enc.encode_images(
        [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(30)]))
    photos = det.score(enc.encode_images(_photos(30, rng)))
    for out in (noise, photos):
        y = np.r_[np.zeros(len(inside)), np.ones(len(out))]
        assert roc_auc_score(y, np.r_[inside, out]) >= 0.95
    assert (inside > det.threshold_).mean() <= 0.15  # about 5% of in-distribution images are flagged


def test_describe_score_gives_the_scale_threshold_and_verdict():
    high = describe_score(14.26, 12.0)
    assert high.startswith("Out-of-distribution score 14.3 (Mahalanobis distance")
    assert "0 at their centre, larger is more unusual" in high
    assert "the threshold 12.0 flags 5% of validation images" in high and "UNLIKE the training images" in high
    low = describe_score(3.0, 12.0, flag_rate=0.1)
    assert "flags 10% of validation images" in low and "looks like the training images" in low
    assert describe_score(3.0) == f"Out-of-distribution score 3.0 ({SCALE})."


def test_image_level_averages_patch_tokens():
    X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(image_level(X), X.mean(1))
    assert image_level(X[:, 0]).shape == (2, 4)
