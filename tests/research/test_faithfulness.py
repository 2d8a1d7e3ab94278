"""Concept faithfulness: a predictor that follows its concept within a class, one that is the class
label in disguise, and one that leaks an artifact."""

import numpy as np
import pytest

from cbm.bank import ConceptBank
from cbm.research.faithfulness import auc, concept_faithfulness, faithfulness_report


class _Fixed:
    """A stand-in fitted model whose activations are given."""

    def __init__(self, A, names):
        self.A, self.concept_names_ = A, names

    def transform(self, X):
        return self.A


def test_auc_matches_the_rank_definition():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert np.isnan(auc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_faithful_disguised_and_leaky_concepts_are_told_apart():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    dark = rng.random(n) < 0.5                    # varies within every class
    tag = rng.random(n) < 0.3                     # an artifact, independent of everything
    A = np.stack([
        dark + 0.3 * rng.standard_normal(n),      # faithful: follows "dark" inside each class
        (y == 1) + 0.05 * rng.standard_normal(n),  # the class label in disguise
        (y == 2) + 0.8 * tag + 0.05 * rng.standard_normal(n),  # class concept that also fires on the tag
    ], 1)
    labels = np.stack([dark.astype(int), (y == 1).astype(int), (y == 2).astype(int)], 1)
    names = ["dark", "is class 1", "leaky"]
    df = concept_faithfulness(_Fixed(A, names), None, y, labels, ConceptBank(names, names), nuisance=tag)
    row = df.set_index("concept")
    assert row.loc["dark", "auc_within_class"] > 0.9 and not row.loc["dark", "disguised"]
    assert np.isnan(row.loc["is class 1", "auc_within_class"]) and row.loc["is class 1", "disguised"]
    assert row.loc["leaky", "leakage"] > 0.9 > 0.6 > row.loc["dark", "leakage"]
    text = faithfulness_report(df)
    assert "1 are class labels in disguise" in text and "leakiest" in text
