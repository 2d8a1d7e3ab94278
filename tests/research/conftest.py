"""The concept world the research tests evaluate models on."""

import pytest

from cbm.data import make_concept_world


@pytest.fixture(scope="module")
def world():
    """Four classes and twelve concepts: a model fits in about a second, and every split has enough
    images per concept for AUCs, leakage and intervention curves."""
    return make_concept_world(n_classes=4, n_concepts=12, n_samples=300, random_state=2)
