"""CAVs from example embeddings: the learned direction, disjoint splits, stats, transfer."""

import numpy as np
import pytest

from cbm.concepts import cavs_from_folders, fit_cav, fit_cavs
from cbm.exceptions import DataError, EncoderMismatchError


def _world(d=16, n=40, seed=0):
    """Concept j is present when feature j is high: positives shifted along axis j."""
    rng = np.random.default_rng(seed)
    neg = rng.normal(size=(n, d))
    pos = {f"c{j}": rng.normal(size=(n, d)) + 4.0 * np.eye(d)[j] for j in range(3)}
    return pos, neg


@pytest.mark.parametrize("method", ["svm", "linear_svm", "mean_diff"])
def test_cav_points_along_the_concept_axis(method):
    pos, neg = _world()
    bank = fit_cavs(pos, neg, method=method, encoder_fingerprint="fake/16")
    assert bank.vectors.shape == (3, 16) and bank.intercepts.shape == (3,)
    for j in range(3):
        v = bank.vectors[j] / np.linalg.norm(bank.vectors[j])
        assert int(np.argmax(v)) == j and v[j] > 0.7
        d = bank.provenance[j].detail
        assert bank.provenance[j].source == "cav" and d["val_acc"] > 0.85
        assert d["margin"]["pos_mean"] > 0 > d["margin"]["neg_mean"]
    assert bank.encoder_fingerprint == "fake/16"


def test_train_and_validation_are_disjoint_and_sized():
    pos, neg = _world(n=20)
    r = fit_cav(pos["c0"], neg, val_fraction=0.25)
    assert (r["n_train"], r["n_val"]) == (30, 10)  # 15+15 train, 5+5 validation, no overlap


def test_regularisation_is_chosen_on_validation():
    pos, neg = _world()
    r = fit_cav(pos["c1"], neg, Cs=(1e-4, 0.01, 1.0))
    assert set(r["val_acc_by_C"]) == {"0.0001", "0.01", "1.0"}
    assert r["val_acc"] == max(r["val_acc_by_C"].values()) == r["val_acc_by_C"][str(r["C"])]


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(DataError, match="at least 2 positive"):
        fit_cav(np.zeros((1, 4)), np.zeros((5, 4)))


def test_bank_transfers_only_to_the_same_encoder():
    pos, neg = _world()
    bank = fit_cavs(pos, neg, method="mean_diff", encoder_fingerprint="clip-a")
    bank.check_encoder("clip-a")
    with pytest.raises(EncoderMismatchError, match="clip-a"):
        bank.check_encoder("clip-b")


def test_cavs_from_image_folders_through_an_encoder(tmp_path):
    from PIL import Image

    class MeanColour:
        fingerprint = "mean-colour/3"

        def encode_images(self, images):
            return np.stack([np.asarray(im, np.float32).mean((0, 1)) / 255 for im in images])

    rng = np.random.default_rng(0)
    for name, rgb in [("red_things", (200, 30, 30)), ("negative", (90, 90, 90))]:
        (tmp_path / name).mkdir()
        for i in range(8):
            col = np.clip(np.array(rgb) + rng.integers(-20, 20, 3), 0, 255).astype(np.uint8)
            Image.fromarray(np.tile(col, (4, 4, 1))).save(tmp_path / name / f"{i}.png")
    bank = cavs_from_folders(tmp_path, MeanColour(), method="mean_diff")
    assert bank.names == ["red things"] and bank.encoder_fingerprint == "mean-colour/3"
    assert bank.vectors[0, 0] > 0 and bank.provenance[0].detail["examples"].endswith("red_things")
