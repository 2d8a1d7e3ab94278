"""cbmkit: interpretable image classification with concept bottleneck models.

Data flow: encoders + EmbeddingStore (embeddings) -> cbm.concepts (ConceptBank) -> cbm.models
(bottleneck) -> cbm.explain / cbm.edits / cbm.history -> cbm.app.

Heavy pieces load lazily, so ``import cbm`` stays cheap.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

# -- source checkout support ------------------------------------------------------------------
# Installed, setuptools maps concepts/ -> cbm.concepts etc. Run from a bare checkout
# (``python -m pytest`` before any install), the same mapping is made here.
_SIBLINGS = {"cbm.concepts": "concepts", "cbm.kernels": "kernels", "cbm.app": "app"}
_ROOT = Path(__file__).resolve().parent.parent


class _SiblingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = next((k for k in _SIBLINGS if fullname == k or fullname.startswith(k + ".")), None)
        if top is None:
            return None
        parts = fullname[len(top) :].lstrip(".").split(".") if fullname != top else []
        base = _ROOT / _SIBLINGS[top] / Path(*parts) if parts else _ROOT / _SIBLINGS[top]
        if (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(
                fullname, base / "__init__.py", submodule_search_locations=[str(base)]
            )
        if base.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(fullname, base.with_suffix(".py"))
        return None


if (_ROOT / "concepts" / "__init__.py").is_file() and not (Path(__file__).parent / "concepts").exists():
    if not any(isinstance(f, _SiblingFinder) for f in sys.meta_path):
        sys.meta_path.append(_SiblingFinder())

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
    # explanations and edits
    "explain": "cbm.explain",
    "EvalSet": "cbm.edit_eval",
    "preview": "cbm.edit_eval",
    "suggest_edits": "cbm.edit_eval",
    "EditSession": "cbm.history",
    # data
    "make_concept_world": "cbm.data",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cbm' has no attribute {name!r}")
