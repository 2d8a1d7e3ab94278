"""Baselines: the linear probe on raw embeddings and the dense (L2-only) concept head."""

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.models.baselines import DenseConceptHead, LinearProbe
from cbm.models.pcbm import PCBM

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=3, n_concepts=10, n_samples=300, noise=0.5, random_state=0)


def test_dense_head_reads_pcbm_activations_with_every_weight_nonzero(world):
    tr, te = world["train"], world["test"]
    dense = DenseConceptHead(concepts=world.bank).fit(tr.X, tr.y)
    sparse = PCBM(concepts=world.bank, lam=0.02).fit(tr.X, tr.y)
    np.testing.assert_allclose(dense.transform(te.X), sparse.transform(te.X))
    assert np.count_nonzero(dense.coef_) == dense.coef_.size > sparse.n_nonzero_
    assert dense.score(te.X, te.y) > 0.7


def test_dense_head_l2_shrinks_weights(world):
    tr = world["train"]
    norms = [np.linalg.norm(DenseConceptHead(concepts=world.bank, lam=lam).fit(tr.X, tr.y).coef_)
             for lam in (1e-4, 1e-1)]
    assert norms[0] > norms[1]


def test_linear_probe_uses_embedding_dimensions_as_features(world):
    tr, te = world["train"], world["test"]
    probe = LinearProbe().fit(tr.X, tr.y)
    assert probe.coef_.shape == (3, tr.X.shape[1])
    np.testing.assert_array_equal(probe.transform(te.X), te.X)
    assert probe.score(te.X, te.y) > 0.7
