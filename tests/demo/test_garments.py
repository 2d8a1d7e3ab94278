"""The demo's garment concept bank and its per-image concept labels."""

import numpy as np

from cbm.demo.garments import ARTIFACT, CLASSES, concept_labels, garment_concept_bank


def test_bank_has_a_prior_for_every_class_and_provenance_for_every_concept():
    bank = garment_concept_bank()
    assert bank.classes == CLASSES and bank.prior.shape == (10, len(bank))
    assert set(np.unique(bank.prior)) <= {-1.0, 0.0, 1.0}
    assert all(p.detail["answers"] for p in bank.provenance)
    assert bank.prior[CLASSES.index("Sneaker"), bank.index("laces")] == 1
    assert bank.prior[CLASSES.index("Trouser"), bank.index("laces")] == -1


def test_artifact_concept_is_neutral_for_every_class():
    bank = garment_concept_bank()
    assert (bank.prior[:, bank.index(ARTIFACT)] == 0).all()
    assert ARTIFACT not in garment_concept_bank(include_artifact=False).names


def test_labels_use_class_answers_and_the_stamp_itself():
    bank = garment_concept_bank()
    y = np.array([CLASSES.index("Bag"), CLASSES.index("Coat")])
    L = concept_labels(bank, y, stamped=np.array([True, False]))
    assert L[0, bank.index("handle")] == 1 and L[1, bank.index("handle")] == 0
    assert L[1, bank.index("zipper")] == -1  # "unknown": not used to ground the concept
    assert L[:, bank.index(ARTIFACT)].tolist() == [1, 0]


def test_bank_lists_40_to_80_concepts_with_measured_ones_unknown_for_every_class():
    from cbm.demo.garments import MEASURED

    bank = garment_concept_bank()
    assert 40 <= len(bank) <= 80
    for name in MEASURED:
        assert (bank.prior[:, bank.index(name)] == 0).all()


def test_measured_concepts_vary_within_a_class():
    from cbm.demo.garments import MEASURED, measured_thresholds

    rng = np.random.default_rng(0)
    images = np.zeros((40, 28, 28), np.uint8)
    for i in range(40):  # same class, different darkness and width
        w = 6 + i % 10
        images[i, 2:26, 14 - w:14 + w] = 60 + 5 * i + rng.integers(0, 20)
    bank = garment_concept_bank()
    y = np.full(40, CLASSES.index("Shirt"))
    L = concept_labels(bank, y, np.zeros(40, bool), images, measured_thresholds(images))
    for name in ("dark fabric", "wide silhouette"):
        col = L[:, bank.index(name)]
        assert (col == 1).any() and (col == 0).any(), name
    assert set(L[:, bank.index(next(iter(MEASURED)))]) <= {-1, 0, 1}
