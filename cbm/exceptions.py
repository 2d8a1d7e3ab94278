"""Exceptions raised by cbmkit. Each message names the thing, the bad value and what to do.

One error type per failure kind:

- :class:`ModelDirError`: anything wrong with a model directory or a file in it (``model.json``,
  a version's ``config.json``/``metrics.json``/weights, ``history.json``): missing, not JSON,
  binary, the wrong shape, or locked by another process for too long.
- :class:`DataError`: any other input file or dataset that cannot be used, including a JSON file
  (a concept bank's ``bank.json``, a concept file) that is unreadable or has the wrong shape.
- :class:`EditError`: an edit that is not valid for the model, or a save/undo/redo/revert that
  cannot be done in the directory's current state.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CBMError(Exception):
    """Base class for cbmkit errors."""


class ModelDirError(CBMError, ValueError):
    """A model directory, or a file in it, is missing, unreadable, of the wrong shape, or locked."""


class EncoderMismatchError(CBMError, ValueError):
    """Embeddings or concept vectors come from a different encoder than expected."""


class CacheError(CBMError, ValueError):
    """An embedding cache file is corrupt or inconsistent."""


class DataError(CBMError, ValueError):
    """A dataset, manifest, image or JSON input file cannot be used."""


class EditError(CBMError, ValueError):
    """A model edit is not valid."""


class ClassMismatchError(CBMError, ValueError):
    """The classes of a concept bank, a model or a dataset do not match by name."""


class NotFittedError(CBMError, AttributeError):
    """An estimator was used before ``fit``."""


class MissingDependencyError(CBMError, ImportError):
    """An optional dependency (e.g. Ray for ``engine="ray"``) is not installed."""


class ClusterUnreachableError(CBMError, ConnectionError):
    """A Ray cluster address (``--address``, ``$RAY_ADDRESS``) does not answer in time."""


class WorkerLostError(CBMError, RuntimeError):
    """A worker of a distributed run died; the work it finished is kept, a rerun does the rest."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``choices`` that look most like ``name``."""
    choices = list(choices)
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not hits:
        low = name.lower()
        hits = [c for c in choices if low in c.lower() or c.lower() in low][:n]
    return hits


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """Build "Unknown concept 'x'. Did you mean ...? Available: ..." messages."""
    choices = list(choices)
    hint = closest(name, choices)
    msg = f"Unknown {kind} {name!r}."
    if hint:
        msg += " Did you mean " + ", ".join(repr(h) for h in hint) + "?"
    shown = ", ".join(repr(c) for c in choices[:12]) + (" ..." if len(choices) > 12 else "")
    return msg + f" Available {_plural(kind)} ({len(choices)}): {shown}"


def _plural(kind: str) -> str:
    """"class" -> "classes", "concept" -> "concepts", "tag for ViT-B-32" -> "tags for ViT-B-32"."""
    noun, sep, rest = kind.partition(" for ")
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s") + sep + rest
