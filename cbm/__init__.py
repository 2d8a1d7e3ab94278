"""cbmkit: interpretable image classification with concept bottleneck models.

Data flow: encoders + EmbeddingStore (embeddings) -> cbm.concepts (ConceptBank) -> cbm.models
(bottleneck) -> cbm.explain / cbm.edits / cbm.history -> cbm.app.

Heavy pieces load lazily, so ``import cbm`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# -- public API (lazy) ------------------------------------------------------------------------
_EXPORTS = {
    # concept bank
    "ConceptBank": "cbm.bank",
    "Provenance": "cbm.bank",
    # embeddings
    "create_encoder": "cbm.encoders",
    "list_encoders": "cbm.encoders",
    "EmbeddingStore": "cbm.store",
    # models
    "create_model": "cbm.models",
    "list_methods": "cbm.models",
    "load_model": "cbm.io",
    "save_model": "cbm.io",
    # explanations and edits (per-prediction explanations: the module ``cbm.explain``)
    "EvalSet": "cbm.edit_eval",
    "preview": "cbm.edit_eval",
    "suggest_edits": "cbm.edit_eval",
    "EditSession": "cbm.history",
    # data
    "make_concept_world": "cbm.data",
}

#: public submodules reachable as attributes of ``cbm`` without an explicit import
_SUBMODULES = ("bank", "concepts", "data", "edit_eval", "edits", "encoders", "exceptions", "explain",
               "history", "io", "kernels", "metrics", "models", "store")

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    """Load a public name or submodule on first access (keeps ``import cbm`` free of torch)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"cbm.{name}")
    raise AttributeError(f"module 'cbm' has no attribute {name!r}")
