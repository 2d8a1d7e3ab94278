"""The repository's top-level source folders (``kernels/``, ``concepts/``, ``app/``) never shadow an
installed package of the same name.

Those folders are installed as ``cbm.kernels``, ``cbm.concepts`` and ``cbm.app``. When Python starts in
the repository root (``python -c``, a script or a notebook there), the root is first on ``sys.path``,
so ``import kernels`` inside some other library (transformers imports Hugging Face's ``kernels``) would
find the source folder. Each folder's ``__init__.py`` then calls :func:`defer_to_installed`, which puts
the installed package of that name in its place, or raises ``ModuleNotFoundError`` if there is none.
"""

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["SOURCE_FOLDERS", "defer_to_installed", "installed_package_dirs"]

#: top-level folder name -> the name it is installed under
SOURCE_FOLDERS = {"kernels": "cbm.kernels", "concepts": "cbm.concepts", "app": "cbm.app"}

_ROOT = Path(__file__).resolve().parent.parent


def _is_root(entry: str) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == _ROOT
    except OSError:
        return False


def installed_package_dirs(package_dir: str) -> list[str]:
    """The installed ``cbm`` folders to search too when ``cbm`` itself was imported from the source folder.

    With Python started in the repository root, ``import cbm`` finds the source folder ``cbm/``, which
    holds no ``kernels``, ``concepts`` or ``app``. A strict editable install keeps all of ``cbm``
    (links to these files) in a folder of its own; ``cbm.__path__`` searches it after the source folder,
    so ``cbm.kernels`` imports as it does anywhere else. Empty for any other install or start.
    """
    if Path(package_dir).resolve() != _ROOT / "cbm" or Path(package_dir).is_symlink():
        return []
    search = [entry for entry in sys.path if not _is_root(entry)]
    spec = importlib.machinery.PathFinder.find_spec("cbm", search)
    found = list(spec.submodule_search_locations or []) if spec is not None else []
    return [d for d in found if Path(d).resolve() != _ROOT / "cbm"
            and all((Path(d) / name.split(".")[1]).is_dir() for name in SOURCE_FOLDERS.values())]


def defer_to_installed(name: str) -> None:
    """Load the installed package ``name`` (searched without the repository root) as ``sys.modules[name]``.

    Called while the source folder ``name`` is being imported under its top-level name; the import
    statement then returns the installed package. Raises ``ModuleNotFoundError`` naming the
    ``cbm.`` path when no other package of that name is installed.
    """
    search = [entry for entry in sys.path if not _is_root(entry)]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(
            f"No module named {name!r}: the folder {str(_ROOT / name)!r} is cbmkit's source of "
            f"{SOURCE_FOLDERS.get(name, 'cbm.' + name)!r}; import it under that name.", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import system returns what sys.modules holds after this runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
