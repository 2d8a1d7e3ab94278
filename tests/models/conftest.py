"""The concept world most model tests train on."""

import pytest

from cbm.data import make_concept_world


@pytest.fixture(scope="module")
def world():
    """``make_concept_world`` with its default sizes and seed 0; a module that needs another world
    defines its own ``world`` fixture."""
    return make_concept_world(random_state=0)
