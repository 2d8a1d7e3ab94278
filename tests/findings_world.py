"""A synthetic multi-finding world shared by the multi-label tests: ten concepts with random unit
vectors (dim 48); each of three findings is present when either of its two planted concepts is."""

import numpy as np

from cbm.bank import ConceptBank

FINDINGS = ["effusion", "cardiomegaly", "nodule"]
PLANTED = {"effusion": {"blunted angle", "fluid line"}, "cardiomegaly": {"wide heart", "big shadow"},
           "nodule": {"round spot", "dense dot"}}
NAMES = ["blunted angle", "fluid line", "wide heart", "big shadow", "round spot", "dense dot",
         "rib", "clavicle", "tube", "marker"]
ENCODER = "findings-world-encoder"


def world(n: int, seed: int):
    """(X (n, 48), Y (n, 3) indicator, bank): concepts present at random, findings from them."""
    rng = np.random.default_rng(0)
    V = rng.standard_normal((len(NAMES), 48)).astype(np.float32)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    C = (rng.random((n, len(NAMES))) < 0.25).astype(np.float32)
    X = C @ V + 0.15 * rng.standard_normal((n, 48)).astype(np.float32)
    Y = np.stack([C[:, 2 * j] + C[:, 2 * j + 1] > 0 for j in range(3)], axis=1).astype(int)
    return X, Y, ConceptBank(NAMES, vectors=V)


def prior_bank(bank: ConceptBank) -> ConceptBank:
    """``bank`` with a finding-concept prior: +1 for each finding's two planted concepts."""
    prior = np.zeros((len(FINDINGS), len(NAMES)), np.float32)
    for k, f in enumerate(FINDINGS):
        prior[k, [NAMES.index(c) for c in PLANTED[f]]] = 1
    return bank.with_prior(FINDINGS, prior)


class Rows:
    """A dataset whose 'images' are row numbers (for an EmbeddingStore cache without images)."""

    def __init__(self, n: int) -> None:
        self.ids = [f"scan-{i:04d}" for i in range(n)]
        self.fingerprint = f"findings-rows:{n}"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> int:
        return i


class LookupEncoder:
    """Returns precomputed embeddings for row numbers."""

    name, fingerprint, supports_images = "findings", ENCODER, False

    def __init__(self, X: np.ndarray) -> None:
        self.X, self.dim = X, X.shape[1]

    def encode_images(self, rows, batch_size: int = 64) -> np.ndarray:
        return self.X[np.asarray(rows)]
