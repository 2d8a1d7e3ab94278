"""scikit-learn's own estimator checks, run over every registered method.

Most methods read concept vectors in the space of X, and the checks fit on data of many
dimensions (1 to 10 features) and label sets (0/1/2, -1/1, "one"/"two"/"three"), so each method is
checked through a thin subclass whose only change is where the concept bank comes from: a small
random bank built at fit time for X's dimension, whose class-concept prior names the labels of y
(LaBo and KnoBo read it by name). CMS, which learns nothing from labels, also gets class
embeddings at fit time: the mean embedding of each class. Everything else is the real estimator.

Every check a method does not pass is listed in ``EXPECTED_FAILURES`` with the reason.
"""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from cbm.bank import ConceptBank
from cbm.models import get_model_class, list_methods

#: tiny problems: one torch thread avoids thread hand-off costs on a shared CPU
pytestmark = pytest.mark.usefixtures("one_thread")

#: small, fast instances: every check fits several times. KnoBo's accuracy threshold and LF-CBM's
#: cut-offs are calibrated for real concepts and CLIP scores; random concepts on the checks' random
#: data would fall below them, so these instances keep every concept.
FAST = {
    "pcbm": {"max_iter": 100, "n_lambdas": 2},
    "pcbm-h": {"max_iter": 100, "n_lambdas": 2, "residual_epochs": 2},
    "labo": {"max_epochs": 10, "lr": 0.05},
    "knobo": {"max_epochs": 10, "lr": 0.05, "threshold": 0.0},
    "sparse-cbm": {"max_epochs": 3},
    "lf-cbm": {"proj_steps": 20, "proj_lr": 1e-2, "max_iter": 100, "clip_cutoff": -1.0,
               "interpretability_cutoff": -1.0},
    "cms": {},
    "linear-probe": {"max_iter": 50},
    "dense-head": {"max_iter": 100},
}

#: methods scikit-learn's checks cannot drive, and why
NOT_CHECKED = {
    "cct": "it reads patch tokens X of shape (N, T, d), while the checks feed 2-d X; the shared "
           "contract tests (tests/models/test_common.py) and tests/models/test_cct.py cover it",
}
CHECKED = [m for m in list_methods() if m not in NOT_CHECKED]

#: why a check fails for every method, by design
_FLOAT32 = ("activations and logits are computed in float32 by torch (on GPU when present); a matrix "
            "product's last bits depend on the batch size (BLAS blocking), about 1e-7 relative, above this "
            "check's float64 tolerance of 1e-7 on predict_proba. Predicted classes do not change.")

#: the same effect for reordered rows: which BLAS micro-kernel handles a row depends on its place in
#: the batch, so on some CPUs (and BLAS kernels) transform/predict_proba move by 1 ulp (6e-8)
_FLOAT32_ORDER = _FLOAT32.replace("depend on the batch size", "depend on the row's place in the batch")

#: method -> {check name: why it is expected to fail}. Non-strict: where BLAS happens to give
#: bit-identical results the check passes, so the suite is green on every CPU.
EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    method: {"check_methods_subset_invariance": _FLOAT32,
             "check_methods_sample_order_invariance": _FLOAT32_ORDER} for method in CHECKED
}

#: check_sample_weight_equivalence_on_dense_data: integer weights against repeated rows, zero weights
#: against dropped rows, compared at rtol 1e-7. tests/models/test_sample_weight.py checks the same
#: equivalence at a tolerance float32 can meet, and the direction where it cannot hold exactly.
_SW_FLOAT32 = ("equivalent in exact arithmetic (a weighted mean of the CE terms), but float32 sums taken in "
               "another order and a solver stopped early (the fast instances here run 100 iterations or 10 "
               "epochs) move predict_proba by 1e-7 to 1e-3, above this check's rtol of 1e-7; "
               "tests/models/test_sample_weight.py checks it at 1e-4 with a tight solver tolerance")
_SW_SPLIT = ("the {what} is drawn per row, so a repeated row can land on both sides of it while an integer "
             "weight cannot: equivalence cannot hold; tests/models/test_sample_weight.py checks that "
             "weighting a class up raises its predicted probability")
_SAMPLE_WEIGHT = {
    "pcbm": _SW_FLOAT32, "pcbm-h": _SW_FLOAT32, "dense-head": _SW_FLOAT32, "linear-probe": _SW_FLOAT32,
    "labo": _SW_FLOAT32,
    "knobo": _SW_SPLIT.format(what="held-out split of the concept grounding"),
    "lf-cbm": _SW_SPLIT.format(what="hold-out split for the concept cut-offs (and the projection's batches)"),
    "sparse-cbm": ("stochastic minibatch training: batches are drawn from a permutation of the rows and the "
                   "Gumbel-softmax noise has one draw per row, so repeated rows train on other batches and "
                   "noise; tests/models/test_sample_weight.py checks the direction"),
}
for _method, _why in _SAMPLE_WEIGHT.items():
    EXPECTED_FAILURES[_method]["check_sample_weight_equivalence_on_dense_data"] = _why


def random_bank(dim: int, classes, n_per_class: int = 3, seed: int = 0) -> ConceptBank:
    """A bank of random concept vectors in R^dim with a +1/-1 prior naming ``classes``."""
    rng = np.random.default_rng(seed)
    K = len(classes)
    M = n_per_class * K
    prior = -np.ones((K, M), np.float32)
    for k in range(K):
        prior[k, k * n_per_class:(k + 1) * n_per_class] = 1.0
    return ConceptBank([f"concept {j}" for j in range(M)], vectors=rng.standard_normal((M, dim)),
                       classes=[str(c) for c in classes], prior=prior)


def _checked_class(method: str) -> type:
    base = get_model_class(method)
    namespace = {"__module__": __name__, "__qualname__": base.__name__ + "Checked"}
    if "concepts" in base().get_params():
        def _concept_bank(self):
            return random_bank(self.n_features_in_, self.classes_)
        namespace["_concept_bank"] = _concept_bank
    if method == "cms":
        def _fit(self, X, y, class_embeddings=None, sample_weight=None):
            w = np.ones(len(X)) if sample_weight is None else sample_weight.cpu().numpy().astype(np.float64)
            Xn, yn = X.cpu().numpy().astype(np.float64), y.cpu().numpy()
            means = {str(c): np.average(Xn[yn == k], axis=0, weights=w[yn == k] + 1e-300)
                     for k, c in enumerate(self.classes_)}  # weighted class means, as repeated rows give
            return base._fit(self, X, y, class_embeddings=means)
        namespace["_fit"] = _fit
    cls = type(base.__name__ + "Checked", (base,), namespace)
    globals()[cls.__name__] = cls  # picklable by name, as check_estimators_pickle needs
    return cls


ESTIMATORS = [_checked_class(m)(device="cpu", **FAST[m]) for m in CHECKED]


def _expected_failures(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(estimator.method, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
