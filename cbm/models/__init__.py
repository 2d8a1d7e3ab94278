"""Concept bottleneck methods: one module per method, one small factory over all of them.

>>> from cbm.models import list_methods, create_model
>>> model = create_model("pcbm", concepts=bank, lam=1e-3)      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cbm.exceptions import unknown_name_message

if TYPE_CHECKING:  # torch and scikit-learn load with the first model, not with `cbm --help`
    from cbm.models._base import BaseConceptModel

#: method name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "pcbm": "cbm.models.pcbm:PCBM",
    "pcbm-h": "cbm.models.pcbm:PCBMHybrid",
    "labo": "cbm.models.labo:LaBo",
    "knobo": "cbm.models.knobo:KnoBo",
    "sparse-cbm": "cbm.models.sparse_cbm:SparseCBM",
    "lf-cbm": "cbm.models.lf_cbm:LabelFreeCBM",
    "cms": "cbm.models.cms:ConceptMatrixSearch",
    "linear-probe": "cbm.models.baselines:LinearProbe",
    "dense-head": "cbm.models.baselines:DenseConceptHead",
    "cct": "cbm.models.cct:ConceptCentricTransformer",
}


def list_methods() -> list[str]:
    """Names accepted by :func:`create_model` and ``cbm train --method``."""
    return list(_REGISTRY)


def get_model_class(method: str) -> type[BaseConceptModel]:
    """The estimator class for ``method`` (imported on first use)."""
    if method not in _REGISTRY:
        raise ValueError(unknown_name_message("method", method, _REGISTRY))
    module, cls = _REGISTRY[method].split(":")
    return getattr(importlib.import_module(module), cls)


def create_model(method: str, **params) -> BaseConceptModel:
    """Construct an unfitted estimator for ``method`` with constructor ``params``."""
    return get_model_class(method)(**params)


__all__ = ["BaseConceptModel", "create_model", "get_model_class", "list_methods"]


def __getattr__(name: str):
    if name == "BaseConceptModel":
        from cbm.models._base import BaseConceptModel

        return BaseConceptModel
    raise AttributeError(f"module 'cbm.models' has no attribute {name!r}")
