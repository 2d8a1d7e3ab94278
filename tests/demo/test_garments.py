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
