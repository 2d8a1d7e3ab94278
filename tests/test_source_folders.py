"""The repository's source folders never shadow installed packages, even from the repository root.

``kernels/``, ``concepts/`` and ``app/`` are installed as ``cbm.kernels``, ``cbm.concepts`` and
``cbm.app``. Python started in the repository root puts the root first on ``sys.path``; these tests
start it there, as a user at a prompt or a notebook would, and import other libraries first.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_in_root(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """``python -c code`` started in the repository root, with the root first on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)  # after the root, like site-packages
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
def test_transformers_and_sentence_transformers_import_from_the_root_then_cbm_kernels():
    code = (
        "import sys; assert sys.path[0] == '', sys.path[:2]\n"
        "import transformers, sentence_transformers\n"
        "import cbm.kernels, cbm.concepts, cbm.app\n"
        "assert callable(cbm.kernels.concept_scores)\n"
        "assert cbm.concepts.SOURCES and cbm.app.ENTRY.name == 'streamlit_app.py'\n"
        "k = sys.modules.get('kernels')\n"
        "print(getattr(k, '__file__', None) or '')\n"
    )
    done = run_in_root(code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not done.stdout.startswith(str(ROOT / "kernels")), done.stdout  # never our folder


@pytest.mark.skipif(importlib.util.find_spec("kernels") is None,
                    reason="Hugging Face's `kernels` distribution not installed")
def test_import_kernels_from_the_root_gives_the_installed_distribution():
    done = run_in_root("import kernels, cbm.kernels; print(kernels.__file__); "
                       "print(cbm.kernels.__file__)")
    assert done.returncode == 0, done.stderr[-3000:]
    installed, ours = done.stdout.split()
    assert "site-packages" in installed and not installed.startswith(str(ROOT / "kernels"))
    assert Path(ours).resolve() == ROOT / "kernels" / "__init__.py"  # the folder itself, or a link to it


@pytest.mark.parametrize("folder", ["kernels", "concepts", "app"])
def test_each_folder_defers_to_an_installed_package_of_its_name(folder, tmp_path):
    other = tmp_path / folder
    other.mkdir()
    (other / "__init__.py").write_text("WHO = 'the installed one'\n")
    (other / "sub.py").write_text("X = 1\n")
    done = run_in_root(f"import {folder}, {folder}.sub; print({folder}.WHO, {folder}.sub.X); "
                       f"import cbm.{folder}; print(cbm.{folder}.__name__)", extra_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["the installed one 1", f"cbm.{folder}"]


@pytest.mark.parametrize("folder", ["kernels", "concepts", "app"])
def test_without_an_installed_package_the_message_names_the_cbm_path(folder, tmp_path):
    spec = importlib.util.find_spec(folder)
    if spec is not None and spec.origin is not None:  # a regular package, not a namespace folder
        pytest.skip(f"a distribution named {folder!r} is installed here")
    done = run_in_root(f"import {folder}", extra_path=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError") and f"'cbm.{folder}'" in last, last


def test_nothing_in_the_project_imports_the_folders_by_their_top_level_names():
    import ast

    offenders = []
    for path in ROOT.rglob("*.py"):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("kernels", "concepts", "app")]
    assert offenders == []
