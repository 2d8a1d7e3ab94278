"""Label-free CBM: the cut-offs drop the concepts they should, activations are standardised, and the
sparse final layer reports its non-zero weights."""

import numpy as np
import pytest
import torch

from cbm import kernels
from cbm.data import make_concept_world
from cbm.models.lf_cbm import LabelFreeCBM

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_concept_world(n_classes=4, n_concepts=12, n_samples=400, concepts_per_class=3,
                              noise=0.5, random_state=0)


def _fit(world, X=None, **params):
    tr, va = world["train"], world["val"]
    X = tr.X if X is None else X
    model = LabelFreeCBM(concepts=world.bank, proj_steps=200, proj_lr=1e-2, lam=1e-3, n_lambdas=4,
                         **params)
    return model.fit(X, tr.y, clip_image_embeddings=tr.X, X_val=va.X if X is tr.X else None,
                     y_val=va.y)


def test_drops_concepts_the_backbone_cannot_explain(world):
    # a backbone blind to concepts 0 and 1: its features carry no trace of their directions
    C = world.bank.vectors[:2].astype(np.float64)
    Q, _ = np.linalg.qr(C.T)
    X = (world["train"].X - world["train"].X @ Q @ Q.T).astype(np.float32)
    model = _fit(world, X=X, interpretability_cutoff=0.7)
    blind = world.bank.names[:2]
    sims = model.similarities_
    assert max(sims[n] for n in blind) < min(v for n, v in sims.items() if n not in blind)
    assert model.dropped_["interpretability"] == blind
    assert all(sims[n] >= 0.7 for n in model.concept_names_)
    assert model.projection_.shape == (len(model.concept_names_), X.shape[1])


def test_activation_cutoff_uses_mean_top5_clip_scores(world):
    tr = world["train"]
    top = kernels.concept_scores(torch.from_numpy(tr.X), torch.from_numpy(world.bank.vectors))
    top5 = top.topk(5, dim=0).values.mean(0).numpy()
    cutoff = float(np.median(top5))
    model = _fit(world, clip_cutoff=cutoff, interpretability_cutoff=-1.0)
    expected = [n for n, s in zip(world.bank.names, top5, strict=True) if s < cutoff]
    assert model.dropped_["activation"] == expected and expected


def test_head_reads_standardised_activations_and_reports_nonzeros(world):
    model = _fit(world, interpretability_cutoff=0.3)
    A = model.transform(world["train"].X)
    np.testing.assert_allclose(A.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(A.std(0), 1, atol=0.02)
    assert model.n_nonzero_ == np.count_nonzero(model.coef_) < model.coef_.size
    assert model.path_[-1]["nnz"] == model.n_nonzero_
    assert model.score(world["test"].X, world["test"].y) > 0.6


def test_clip_embeddings_must_match_the_concept_space(world):
    tr = world["train"]
    with pytest.raises(ValueError, match="clip_image_embeddings must have shape"):
        LabelFreeCBM(concepts=world.bank).fit(tr.X, tr.y, clip_image_embeddings=tr.X[:, :5])
