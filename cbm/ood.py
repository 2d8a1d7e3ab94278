"""Out-of-distribution scores: how unlike the training embeddings an image's embedding is.

:class:`OODDetector` fits a Gaussian to training embeddings (mean and a shrunk covariance, so a
few hundred images in a high dimension suffice) and scores new embeddings by their Mahalanobis
distance to it. Embeddings are scaled to unit length first (``normalize=True``): the direction of
a CNN embedding tells what is in the image, its length mostly how much texture; without this,
random noise (weak activations) lands near the training mean and is not flagged. The threshold is calibrated on held-out in-distribution embeddings (the
validation split) so that it flags at most ``flag_rate`` of them (5% by default).

The scale (:data:`SCALE`): 0 at the centre of the training embeddings, larger is more unusual, no
upper limit; only the comparison with the threshold carries meaning across models.
:func:`describe_score` words a score the same way in ``cbm explain``, ``cbm predict``'s summary,
the HTML report and the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbm.exceptions import DataError

#: What an out-of-distribution score measures, in the words every place that shows one uses.
SCALE = ("Mahalanobis distance of the image's unit-length embedding to the training images' embeddings: "
         "0 at their centre, larger is more unusual, no upper limit")


class OODDetector:
    """Mahalanobis distance to the training embeddings, with a threshold calibrated on validation.

    Parameters
    ----------
    shrinkage : float in [0, 1], optional
        Weight of the scaled identity in the covariance; default: Ledoit-Wolf's estimate.
    flag_rate : float
        Fraction of the calibration embeddings the threshold may flag (default 0.05).
    normalize : bool
        Scale embeddings to unit length before fitting and scoring (default True).
    """

    def __init__(self, shrinkage: float | None = None, flag_rate: float = 0.05, normalize: bool = True):
        self.shrinkage = shrinkage
        self.flag_rate = flag_rate
        self.normalize = normalize

    def fit(self, X: Any, X_calib: Any = None) -> OODDetector:
        """Fit mean and precision on ``X`` (N, d); calibrate the threshold on ``X_calib`` (default ``X``)."""
        X = self._prep(_check(X, "training embeddings"))
        if len(X) < 2:
            raise DataError(f"Fitting an out-of-distribution score needs at least 2 embeddings; got {len(X)}.")
        if not 0 < self.flag_rate < 1:
            raise ValueError(f"flag_rate must be between 0 and 1; got {self.flag_rate!r}.")
        self.mean_ = X.mean(0)
        Xc = X - self.mean_
        if self.shrinkage is None:
            from sklearn.covariance import ledoit_wolf

            cov, self.shrinkage_ = ledoit_wolf(Xc, assume_centered=True)
        else:
            self.shrinkage_ = float(self.shrinkage)
            emp = Xc.T @ Xc / len(X)
            mu = np.trace(emp) / emp.shape[0]
            cov = (1 - self.shrinkage_) * emp + self.shrinkage_ * mu * np.eye(emp.shape[0])
        cov = np.asarray(cov, np.float64) + 1e-9 * np.eye(X.shape[1])
        try:  # a Cholesky solve: ~30x faster than pinv's eigendecomposition at d = 512
            from scipy.linalg import cho_factor, cho_solve

            self.precision_ = cho_solve(cho_factor(cov), np.eye(len(cov)))
        except np.linalg.LinAlgError:  # not positive definite (shrinkage=0, fewer samples than dims)
            self.precision_ = np.linalg.pinv(cov, hermitian=True)
        calib = X if X_calib is None else self._prep(_check(X_calib, "calibration embeddings"))
        if calib.shape[1] != X.shape[1]:
            raise DataError(f"Calibration embeddings have {calib.shape[1]} dimensions; the training ones "
                            f"have {X.shape[1]}.")
        self.threshold_ = float(np.quantile(self._distance(calib), 1 - self.flag_rate, method="higher"))
        return self

    def _prep(self, X: np.ndarray) -> np.ndarray:
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12) if self.normalize else X

    def _distance(self, X: np.ndarray) -> np.ndarray:
        Xc = X - self.mean_
        quad = np.einsum("nd,nd->n", Xc @ self.precision_, Xc)  # one matrix product (BLAS), not a 3-way einsum
        return np.sqrt(np.maximum(quad, 0)).astype(np.float32)

    def score(self, X: Any) -> np.ndarray:
        """Mahalanobis distance (N,) of each embedding to the training distribution; larger is stranger."""
        if not hasattr(self, "precision_"):
            raise DataError("This out-of-distribution detector is not fitted; call fit(X_train, X_val) first.")
        X = _check(X, "embeddings")
        if X.shape[1] != len(self.mean_):
            raise DataError(f"Embeddings have {X.shape[1]} dimensions; the detector was fitted on "
                            f"{len(self.mean_)} (another encoder?).")
        return self._distance(self._prep(X))

    def is_outlier(self, X: Any) -> np.ndarray:
        """True (N,) where the score is above the calibrated threshold."""
        return self.score(X) > self.threshold_

    def save(self, path: str | Path) -> Path:
        """Write mean, precision and threshold to an ``.npz`` file."""
        path = Path(path)
        np.savez(path, mean=self.mean_, precision=self.precision_, threshold=self.threshold_,
                 flag_rate=self.flag_rate, shrinkage=self.shrinkage_, normalize=self.normalize)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OODDetector:
        """Read a detector written by :meth:`save`; a damaged file gets a clear message."""
        try:
            with np.load(path, allow_pickle=False) as z:
                det = cls(flag_rate=float(z["flag_rate"]), normalize=bool(z["normalize"]))
                det.mean_, det.precision_ = z["mean"], z["precision"]
                det.threshold_, det.shrinkage_ = float(z["threshold"]), float(z["shrinkage"])
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"Cannot read the out-of-distribution detector {str(path)!r} ({e}); "
                            "refit it with OODDetector().fit(X_train, X_val).") from None
        return det


def _check(X: Any, what: str) -> np.ndarray:
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise DataError(f"The {what} must be a finite 2-D array (n_samples, dim); got shape {X.shape}.")
    return X


def image_level(X: Any) -> np.ndarray:
    """Embeddings (N, d) to score: patch tokens (N, T, d) of token models are averaged over tokens."""
    X = np.asarray(X, np.float32)
    return X.mean(1) if X.ndim == 3 else X


def describe_score(score: float, threshold: float | None = None, flag_rate: float = 0.05) -> str:
    """One sentence for people: the score, its scale, the threshold and what they mean for this image."""
    text = f"Out-of-distribution score {score:.1f} ({SCALE})"
    if threshold is None:
        return text + "."
    verdict = ("so this image is UNLIKE the training images: treat the prediction with care" if score > threshold
               else "so this image looks like the training images")
    return (f"{text}; the threshold {threshold:.1f} flags {flag_rate:.0%} of validation images, {verdict}.")


def fit_ood(splits: dict[str, np.ndarray], flag_rate: float = 0.05, random_state: int = 0) -> OODDetector:
    """A detector for the in-distribution splits of a model's evaluation data.

    Fitted on ``train`` and calibrated on ``val`` (else ``test``) when there is a training split;
    otherwise ``val`` and ``test`` (the training sites' held-out images) are pooled and split in
    two halves at random: one to fit, one to calibrate. ``shifted`` is never used.
    """
    if "train" in splits:
        calib = next((splits[s] for s in ("val", "test") if s in splits), None)
        return OODDetector(flag_rate=flag_rate).fit(splits["train"], calib)
    held = [np.asarray(splits[s]) for s in ("val", "test") if s in splits]
    if not held or sum(len(h) for h in held) < 4:
        raise DataError(f"An out-of-distribution score needs embeddings of the training sites (split 'train', "
                        f"'val' or 'test'); the data has {sorted(splits)}.")
    X = np.concatenate(held)
    order = np.random.default_rng(random_state).permutation(len(X))
    half = len(X) // 2
    return OODDetector(flag_rate=flag_rate).fit(X[order[:half]], X[order[half:]])


__all__ = ["SCALE", "OODDetector", "describe_score", "fit_ood", "image_level"]
