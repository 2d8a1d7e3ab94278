"""Explanations and test-time interventions for any concept bottleneck model.

Every method ends in a linear head on concept activations (:class:`~cbm.models.BaseConceptModel`),
so a class score splits exactly into one part per concept plus the intercept (and, for hybrid
models such as PCBM-h, a residual part that no concept explains)::

    logit[n, k] = sum_j coef_[k, j] * A[n, j] + intercept_[k] + residual[n, k]

All functions are pure and vectorised over samples; they take activations ``A = model.transform(X)``
(computed once, e.g. by the app) or raw embeddings ``X``, and return numpy arrays, pandas
DataFrames or small dataclasses that the CLI and the app print or plot.
"""

from cbm.encoders.rebuild import encoder_for as encoder_for
from cbm.explain._contrast import Contrast, concept_bounds, concept_percentile, contrast
from cbm.explain._contributions import Explanation, contributions, explain, explain_one
from cbm.explain._global_view import top_concepts, unused_concepts, weight_matrix
from cbm.explain._images import concept_map as concept_map
from cbm.explain._images import embed_image, occlusion_map
from cbm.explain._inputs import Target as Target
from cbm.explain._inputs import activations_and_residual as activations_and_residual
from cbm.explain._inputs import class_index, concept_index
from cbm.explain._interventions import (
    Intervention,
    counterfactual,
    counterfactual_table,
    intervene,
    intervention_effects,
    softmax,
)

__all__ = [
    "Contrast", "Explanation", "Intervention", "concept_bounds", "concept_percentile", "contrast",
    "intervention_effects",
    "occlusion_map", "class_index", "concept_index", "contributions", "counterfactual",
    "counterfactual_table", "embed_image", "explain", "explain_one", "intervene",
    "softmax", "top_concepts",
    "unused_concepts", "weight_matrix",
]
