"""MkDocs hook: let the API reference find ``cbm.concepts``, ``cbm.kernels`` and ``cbm.app`` (and let
listed docstring quirks through ``--strict``: none today).

The install maps three sibling folders into the ``cbm`` namespace (``[tool.setuptools] package-dir``
in pyproject.toml), which griffe, reading the sources without importing them, cannot follow. Before
the build this hook links the same tree into a temporary folder (``cbm/`` with ``concepts``,
``kernels`` and ``app`` inside it) and points mkdocstrings there; nothing is imported or copied.

Every warning fails the strict build except those listed in :data:`KNOWN_DOCSTRING_QUIRKS` (empty:
free text after a numpy ``Parameters``/``Attributes`` section, which griffe reads as one more entry,
was fixed in the docstrings themselves).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]

#: (file, what griffe quotes from the docstring) for the warnings let through; see the module docstring
KNOWN_DOCSTRING_QUIRKS: tuple[tuple[str, tuple[str, ...]], ...] = ()  # none left; add (file, quotes) only with a reason


class _KnownQuirks(logging.Filter):
    """Drops griffe's warnings for :data:`KNOWN_DOCSTRING_QUIRKS`, keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for file, quoted in KNOWN_DOCSTRING_QUIRKS:
            if f"/{file}:" in text and any(q in text for q in quoted):
                return False
        return True


def _package_dirs() -> dict[str, str]:
    """``{"cbm": "cbm", "cbm.concepts": "concepts", ...}`` from pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["package-dir"]


def source_tree() -> Path:
    """A temporary folder holding ``cbm/`` as installed (links to the repository's folders)."""
    tree = Path(tempfile.mkdtemp(prefix="cbm-docs-src-"))
    atexit.register(shutil.rmtree, tree, ignore_errors=True)
    dirs = _package_dirs()
    pkg = tree / "cbm"
    pkg.mkdir()
    mapped = {name.split(".", 1)[1]: ROOT / folder for name, folder in dirs.items() if name.count(".") == 1}
    for child in (ROOT / dirs["cbm"]).iterdir():
        if child.name != "__pycache__" and child.name not in mapped:
            (pkg / child.name).symlink_to(child)
    for name, folder in mapped.items():
        (pkg / name).symlink_to(folder, target_is_directory=True)
    return tree


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config):
    """Point mkdocstrings' Python handler at the linked tree."""
    python = config.plugins["mkdocstrings"].config["handlers"].setdefault("python", {})
    python["paths"] = [str(source_tree())]
    for name in ("mkdocs.plugins.griffe", "griffe"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownQuirks) for f in logger.filters):
            logger.addFilter(_KnownQuirks())
    return config
