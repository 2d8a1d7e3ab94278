"""cbmkit: interpretable image classification with concept bottleneck models.

Data flow: encoders + EmbeddingStore (embeddings) -> cbm.concepts (ConceptBank) -> cbm.models
(bottleneck) -> cbm.explain / cbm.edits (kinds, preview, repair, history) -> cbm.app; the research
bench (evaluation, annotations, interventions, experiments) is cbm.research.

Heavy pieces load lazily, so ``import cbm`` stays cheap. Modules that moved into a package still
import under their old names (``cbm.history`` is ``cbm.edits.history``), with a DeprecationWarning.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

from cbm._source_folders import installed_package_dirs

__version__ = "0.1.0"
__path__ += installed_package_dirs(__path__[0])  # Python started in the repository root: see there

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
    "EvalSet": "cbm.edits.preview",
    "preview": "cbm.edits.preview",
    "suggest_edits": "cbm.edits.preview",
    "EditSession": "cbm.edits.history",
    # data
    "make_concept_world": "cbm.data",
}

#: public submodules reachable as attributes of ``cbm`` without an explicit import
_SUBMODULES = ("bank", "concepts", "data", "edits", "encoders", "exceptions", "explain", "io", "kernels",
               "metrics", "models", "research", "store")

#: old module name -> its home since the move into packages; the old name still imports (same module
#: object) with a DeprecationWarning naming the new one
_MOVED = {
    "cbm.edit_eval": "cbm.edits.preview",
    "cbm.history": "cbm.edits.history",
    "cbm.repair": "cbm.edits.repair",
    "cbm.edit_report": "cbm.edits.report",
    "cbm.evaluation": "cbm.research.evaluation",
    "cbm.annotations": "cbm.research.annotations",
    "cbm.interventions": "cbm.research.interventions",
    "cbm.experiment": "cbm.research.experiment",
    "cbm.faithfulness": "cbm.research.faithfulness",
    "cbm._experiment_data": "cbm.research._experiment_data",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    """Load a public name or submodule on first access (keeps ``import cbm`` free of torch)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES or f"cbm.{name}" in _MOVED:
        return importlib.import_module(f"cbm.{name}")
    raise AttributeError(f"module 'cbm' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names and the public submodules (loaded or not), for ``dir(cbm)`` and completion."""
    return sorted(set(__all__) | set(_SUBMODULES))


def _caller_stacklevel() -> int:
    """``stacklevel`` for a warning raised under an import: the first frame outside importlib and cbm.

    ``warnings`` itself skips importlib's bootstrap frames when it counts, so they are not counted here.
    """
    import inspect  # only on an old name's first import

    here = os.path.abspath(__file__)
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not (os.path.abspath(name) == here or name == importlib.__file__):
            return level
        frame = frame.f_back
        while frame is not None and "importlib" in frame.f_code.co_filename \
                and "_bootstrap" in frame.f_code.co_filename:
            frame = frame.f_back
        level += 1
    return 1


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new home (imported once, shared under both names)."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        """Import the new module and hand it over as the old name's module."""
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        """Nothing to run (the new module ran); keep its own spec, which the import system overwrote."""
        module.__spec__ = self.spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds only the old names in :data:`_MOVED`; every other import goes to the usual finders."""

    def find_spec(self, fullname, path=None, target=None):
        """A spec that loads the new module for an old name (with a DeprecationWarning), else None."""
        new = _MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; import {new} instead", DeprecationWarning,
                      stacklevel=_caller_stacklevel())
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))


sys.meta_path[:] = [f for f in sys.meta_path if type(f).__qualname__ != "_MovedModuleFinder"
                    or type(f).__module__ != __name__]  # once, even after importlib.reload(cbm)
sys.meta_path.append(_MovedModuleFinder())
