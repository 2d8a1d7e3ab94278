"""A controlled concept world: aligned image/text embeddings with a known concept structure.

Like :func:`sklearn.datasets.make_classification`, :func:`make_concept_world` plants a structure
that methods should recover, so tests and benchmarks can check *what* a model learned, not only
how accurate it is:

* every class has a sparse set of concepts (the ground-truth class-concept matrix);
* each sample shows its class's concepts (each dropped with probability ``concept_flip``) and
  occasionally a concept of another class;
* an image embedding is a noisy mixture of the directions of the concepts it shows, plus a few
  nuisance directions and isotropic noise, in the same space as the concept text embeddings;
* optionally a *spurious* concept ("water background") co-occurs with ``spurious_class`` in the
  training domain and appears with the *other* classes in the shifted domain, so a head that
  leans on it in-domain is fooled after the shift and pruning it helps.

Concept texts are embedded by a real text encoder when ``text_encoder`` is given ("minilm" or an
encoder object); the default uses random, nearly orthogonal directions, which is fast and makes
recovery tests sharp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbm._io import atomic_path
from cbm.arrays import unit_rows
from cbm.bank import ConceptBank, Provenance

_BIRD_CLASSES = [
    "cardinal", "blue jay", "goldfinch", "crow", "mallard", "robin", "barn swallow", "flamingo",
    "woodpecker", "pelican", "magpie", "kingfisher", "sparrow", "oriole", "toucan", "heron",
    "puffin", "hummingbird", "owl", "parrot",
]
_BIRD_CONCEPTS = [
    "red crown", "black face mask", "conical orange beak", "blue crest", "white underparts",
    "yellow body", "black wings", "glossy black plumage", "green head", "white neck ring",
    "orange breast", "forked tail", "pink plumage", "long thin legs", "red nape patch",
    "throat pouch", "long tail", "iridescent throat", "hooked beak", "large eyes", "spotted chest",
    "short conical beak", "striped head", "webbed feet", "dagger-like beak", "barred wings",
    "brown back", "orange belly", "curved bill", "white wing bars", "grey back", "long neck",
    "speckled plumage", "black cap", "colourful bill", "short tail", "streaked flanks",
    "yellow eye ring", "crested head", "bright green feathers", "downy chest", "tufted ears",
    "rusty cheeks", "pointed wings", "fanned tail", "white rump", "black throat", "olive back",
]
_SPURIOUS_CONCEPT = ("water background", "a bird photographed in front of water")


@dataclass
class Split:
    """One split of a :class:`ConceptWorld`.

    Attributes
    ----------
    X : ndarray of shape (N, d)
        Image embeddings.
    y : ndarray of shape (N,)
        Class indices.
    domains : ndarray of shape (N,)
        Domain name of each sample ("source" or "shifted").
    concepts : ndarray of shape (N, M)
        Ground-truth concept presence (0/1) per sample.
    """

    X: np.ndarray
    y: np.ndarray
    domains: np.ndarray
    concepts: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ConceptWorld:
    """A synthetic dataset with known class-concept structure (see :func:`make_concept_world`).

    Attributes
    ----------
    bank : ConceptBank
        Concept names, texts, text-embedding ``vectors`` (M, d) and a class ``prior`` (K, M) in
        {+1, 0, -1}: +1 for the concepts generated for a class, -1 for other classes' concepts,
        0 for the spurious concept (nobody described it).
    class_names, class_texts : list of str
    class_embeddings : ndarray of shape (K, d)
        Text embeddings of ``class_texts`` (for training-free methods such as CMS).
    splits : dict of str -> Split
        "train", "val", "test" (source domain) and "shifted".
    class_concepts : ndarray of shape (K, M)
        Ground-truth 0/1 class-concept matrix (the spurious concept is in no class).
    spurious_index : int or None
        Column of the spurious concept in the bank, None without one.
    spurious_class : int or None
    encoder_fingerprint : str
    params : dict
        The arguments the world was made with.
    """

    bank: ConceptBank
    class_names: list[str]
    class_texts: list[str]
    class_embeddings: np.ndarray
    splits: dict[str, Split]
    class_concepts: np.ndarray
    spurious_index: int | None
    spurious_class: int | None
    encoder_fingerprint: str
    params: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise KeyError(f"Unknown split {split!r}; this world has {list(self.splits)}.")
        return self.splits[split]

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays ``X_<split>``, ``y_<split>``, ``domains_<split>``, ``concepts_<split>``."""
        out = {}
        for name, s in self.splits.items():
            out.update({f"X_{name}": s.X, f"y_{name}": s.y, f"domains_{name}": s.domains,
                        f"concepts_{name}": s.concepts})
        return out

    def save_npz(self, path: str | Path) -> Path:
        """Write the splits as one ``.npz`` (``X_train``, ``y_train``, ... ``domains_shifted``).

        This is the ``--data`` format of ``cbm train``/``cbm eval``; save :attr:`bank` with
        ``bank.save(dir)`` for ``--concepts``.
        """
        path = Path(path)
        arrays = self.arrays()
        arrays["class_names"] = np.asarray(self.class_names)
        arrays["class_embeddings"] = self.class_embeddings
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path


def make_concept_world(
    n_classes: int = 5,
    n_concepts: int = 20,
    n_samples: int = 600,
    concepts_per_class: int = 3,
    noise: float = 1.0,
    *,
    dim: int = 64,
    concept_flip: float = 0.25,
    n_nuisance: int = 4,
    spurious: bool = True,
    spurious_class: int = 0,
    spurious_rate_train: float = 0.9,
    spurious_rate_shift: float = 0.6,
    spurious_strength: float = 1.5,
    n_shifted: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    text_encoder: Any = None,
    label_names: bool = False,
    random_state: int | None = 0,
) -> ConceptWorld:
    """Make a :class:`ConceptWorld`.

    Parameters
    ----------
    n_classes, n_concepts : int
        K classes and M concepts (the spurious concept, when planted, is one of the M).
    n_samples : int
        Source-domain samples, split into train/val/test by ``val_fraction``/``test_fraction``.
    concepts_per_class : int
        Concepts generated for each class (classes may share concepts, never a whole set).
    noise : float
        Scale of the isotropic embedding noise relative to a unit concept signal.
    dim : int
        Embedding dimension for the default encoder (ignored with a real ``text_encoder``).
    concept_flip : float
        Probability that a class concept is missing from a sample (and, at a quarter of that
        rate, that another concept shows up).
    n_nuisance : int
        Nuisance directions (pose, lighting) with random per-sample strength.
    spurious : bool
        Plant a spurious concept (the last bank column) tied to ``spurious_class``.
    spurious_rate_train : float
        P(spurious concept | spurious class) in the source domain; other classes get it at 5%.
    spurious_rate_shift : float
        P(spurious concept | other class) in the shifted domain; the spurious class never shows it.
    spurious_strength : float
        Strength of the spurious concept in the image embedding.
    n_shifted : int, optional
        Shifted-domain samples (default: as many as the test split).
    text_encoder : None, "minilm" or encoder
        None: random directions. "minilm": the bundled all-MiniLM-L6-v2. Otherwise an object with
        ``encode_text(list[str]) -> (n, d)`` (and optionally ``fingerprint``).
    label_names : bool, default=False
        Labels ``y`` as class names (those of the bank's prior) instead of indices 0..K-1, so a
        model fitted on them has named ``classes_`` (what ``cbm train --world`` does).
    random_state : int, optional

    Returns
    -------
    ConceptWorld

    Examples
    --------
    >>> world = make_concept_world(n_classes=3, n_concepts=9, n_samples=90)
    >>> world["train"].X.shape[1] == world.bank.vectors.shape[1]
    True
    """
    _check_args(n_classes, n_concepts, concepts_per_class, spurious, spurious_class, n_samples)
    rng = np.random.default_rng(random_state)
    params = {k: v for k, v in locals().items() if k not in ("rng", "text_encoder")}
    params["text_encoder"] = text_encoder if isinstance(text_encoder, str | None) else repr(text_encoder)
    m_real = n_concepts - int(spurious)
    G = _class_concept_matrix(rng, n_classes, m_real, concepts_per_class)
    names, texts = _concept_names(m_real)
    class_names = [_BIRD_CLASSES[k] if k < len(_BIRD_CLASSES) else f"bird {k}" for k in range(n_classes)]
    class_texts = [
        f"a photo of a {c}, a bird with " + _join([names[j] for j in np.flatnonzero(G[k])])
        for k, c in enumerate(class_names)
    ]
    if spurious:
        names.append(_SPURIOUS_CONCEPT[0])
        texts.append(_SPURIOUS_CONCEPT[1])
        G = np.concatenate([G, np.zeros((n_classes, 1), G.dtype)], axis=1)

    vectors, class_emb, fingerprint = _embed(rng, texts, class_texts, G, dim, text_encoder)
    d = vectors.shape[1]
    nuisance = unit_rows(rng.standard_normal((n_nuisance, d)))
    sp_idx = n_concepts - 1 if spurious else None
    sp_cls = spurious_class if spurious else None

    n_val, n_test = int(round(n_samples * val_fraction)), int(round(n_samples * test_fraction))
    sizes = {"train": n_samples - n_val - n_test, "val": n_val, "test": n_test,
             "shifted": n_test if n_shifted is None else int(n_shifted)}
    splits = {}
    for name, n in sizes.items():
        y = np.arange(n) % n_classes
        rng.shuffle(y)
        Z = _sample_concepts(rng, G, y, concept_flip)
        if spurious:
            if name == "shifted":
                p = np.where(y == spurious_class, 0.0, spurious_rate_shift)
            else:
                p = np.where(y == spurious_class, spurious_rate_train, 0.05)
            Z[:, sp_idx] = rng.random(n) < p
        strength = rng.uniform(0.6, 1.4, Z.shape) * Z
        if spurious:
            strength[:, sp_idx] = Z[:, sp_idx] * spurious_strength
        X = strength @ vectors + rng.standard_normal((n, n_nuisance)) * 0.5 @ nuisance
        X = X + noise * rng.standard_normal((n, d)) * np.sqrt(concepts_per_class / d)
        domain = "shifted" if name == "shifted" else "source"
        labels = np.asarray(class_names)[y] if label_names else y.astype(np.int64)
        splits[name] = Split(X.astype(np.float32), labels,
                             np.full(n, domain), Z.astype(np.int8))

    prior = np.where(G > 0, 1.0, -1.0).astype(np.float32)
    if spurious:
        prior[:, sp_idx] = 0.0
    provenance = [
        Provenance("manual", {"synthetic": True, "classes": [class_names[k] for k in np.flatnonzero(G[:, j])],
                              "spurious": j == sp_idx})
        for j in range(n_concepts)
    ]
    bank = ConceptBank(names, texts, vectors=vectors, provenance=provenance, classes=class_names,
                       prior=prior, metadata={"synthetic": True}, encoder_fingerprint=fingerprint)
    return ConceptWorld(bank, class_names, class_texts, class_emb.astype(np.float32), splits,
                        G.astype(np.int8), sp_idx, sp_cls, fingerprint, params)


def _check_args(K: int, M: int, per_class: int, spurious: bool, sp_class: int, n: int) -> None:
    if K < 2:
        raise ValueError(f"make_concept_world needs n_classes >= 2; got {K}.")
    m_real = M - int(spurious)
    if not 1 <= per_class <= m_real:
        raise ValueError(
            f"concepts_per_class must be in [1, {m_real}] (n_concepts minus the spurious one); "
            f"got {per_class}."
        )
    if spurious and not 0 <= sp_class < K:
        raise ValueError(f"spurious_class must be a class index in [0, {K - 1}]; got {sp_class}.")
    if n < 3 * K:
        raise ValueError(f"n_samples must be at least 3 * n_classes = {3 * K}; got {n}.")


def _class_concept_matrix(rng: np.random.Generator, K: int, M: int, per_class: int) -> np.ndarray:
    """Sparse class-concept sets, spread so every concept is used and no two classes are equal."""
    if math.comb(M, per_class) < K:  # the loop below could never make every class's set unique
        raise ValueError(f"{K} classes need distinct sets of concepts_per_class={per_class} of the {M} class "
                         "concepts (n_concepts minus nuisance and spurious ones); raise n_concepts or lower "
                         "concepts_per_class.")
    G = np.zeros((K, M), np.int8)
    order = rng.permutation(M)
    for k in range(K):
        own = [order[(k * per_class + i) % M] for i in range(per_class)]
        G[k, own] = 1
    for k in range(1, K):  # when K * per_class > M, sets can repeat: perturb until unique
        while any((G[k] == G[j]).all() for j in range(k)):
            G[k] = 0
            G[k, rng.choice(M, per_class, replace=False)] = 1
    return G


def _sample_concepts(rng: np.random.Generator, G: np.ndarray, y: np.ndarray, flip: float) -> np.ndarray:
    """Per-sample concept presence: class concepts kept w.p. 1 - flip, others on w.p. flip / 4."""
    on = G[y].astype(bool)
    r = rng.random(on.shape)
    return np.where(on, r >= flip, r < flip / 4).astype(np.int8)


def _concept_names(M: int) -> tuple[list[str], list[str]]:
    names = [_BIRD_CONCEPTS[j] if j < len(_BIRD_CONCEPTS) else f"attribute {j}" for j in range(M)]
    return names, [f"a bird with {n}" for n in names]


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _embed(rng: np.random.Generator, texts: list[str], class_texts: list[str], G: np.ndarray,
           dim: int, text_encoder: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Concept and class text embeddings: random directions, or a real text encoder."""
    if text_encoder is None:
        vectors = unit_rows(rng.standard_normal((len(texts), dim)))
        class_emb = unit_rows(G.astype(np.float64) @ vectors + 0.3 * unit_rows(rng.standard_normal((len(G), dim))))
        return vectors.astype(np.float32), class_emb, f"synthetic-random-{dim}d"
    encoder = _load_text_encoder(text_encoder)
    fp = str(getattr(encoder, "fingerprint", None) or type(encoder).__name__)
    vectors = unit_rows(np.asarray(encoder.encode_text(texts), np.float64))
    class_emb = unit_rows(np.asarray(encoder.encode_text(class_texts), np.float64))
    return vectors.astype(np.float32), class_emb, fp


def _load_text_encoder(text_encoder: Any) -> Any:
    if not isinstance(text_encoder, str):
        if not hasattr(text_encoder, "encode_text"):
            raise TypeError(
                f"text_encoder must be None, 'minilm' or an object with encode_text(texts); "
                f"got {type(text_encoder).__name__}."
            )
        return text_encoder
    from cbm.encoders import create_encoder

    return create_encoder(text_encoder)
