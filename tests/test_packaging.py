"""Packaging: one import namespace ``cbm``, mapped by the install (editable or wheel)."""

import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SIBLINGS = {"cbm.concepts": "concepts", "cbm.kernels": "kernels", "cbm.app": "app"}


def test_the_install_maps_the_sibling_folders_into_cbm():
    """`pip install -e .` maps concepts/, kernels/ and app/ (setuptools package-dir, no hook of ours)."""
    import cbm

    cbm_dir = Path(cbm.__file__).parent
    for name, folder in SIBLINGS.items():
        mod = importlib.import_module(name)
        where = Path(mod.__file__).parent
        assert where in (ROOT / folder, cbm_dir / name.split(".")[1]), (name, where)
    ours = [f for f in sys.meta_path if getattr(f, "__module__", "").startswith("cbm")
            or type(f).__module__.startswith("cbm")]
    # cbm's one finder only serves the old names of moved modules (cbm._MOVED), never the siblings
    assert [type(f).__name__ for f in ours] == ["_MovedModuleFinder"], ours
    for name in SIBLINGS:
        assert ours[0].find_spec(name) is None, name


def test_an_editor_resolves_the_mapped_packages_in_the_projects_environment(tmp_path):
    """Go-to-definition (jedi, the engine behind many editors) follows the install to concepts/, kernels/, app/.

    setuptools' default editable install reaches them only through an import hook that static tools
    do not run; ``make setup`` installs in strict editable mode (a tree of links), which they follow.
    """
    import jedi

    env = jedi.create_environment(sys.prefix, safe=False)
    source = "".join(f"import {name}\n" for name in SIBLINGS) + "from cbm.kernels.concept_scores import concept_scores\n"
    script = jedi.Script(source, path=tmp_path / "user.py", environment=env, project=jedi.Project(tmp_path))
    for line, (name, folder) in enumerate(SIBLINGS.items(), start=1):
        found = script.goto(line, len(f"import {name}"), follow_imports=True)
        assert [Path(n.module_path).resolve() for n in found] == [ROOT / folder / "__init__.py"], name
    found = script.goto(len(SIBLINGS) + 1, len(source.splitlines()[-1]), follow_imports=True)
    assert [(Path(n.module_path).resolve(), n.type) for n in found] == [
        (ROOT / "kernels" / "concept_scores.py", "function")]


@pytest.mark.slow
def test_wheel_installs_nothing_outside_the_cbm_namespace(tmp_path):
    src = tmp_path / "src"  # build from a copy: setuptools leaves build/ in the source tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "test-artifacts", "*.egg-info", "__pycache__", "docs", "benchmarks"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-300:]}")
    wheel = next(tmp_path.glob("cbmkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("cbmkit-")}
    assert tops == {"cbm"}
    for pkg in ("cbm/concepts/__init__.py", "cbm/kernels/__init__.py", "cbm/app/__init__.py",
                "cbm/encoders/configs", "cbm/concepts/prompts"):
        assert any(n.startswith(pkg) for n in names), pkg
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import cbm, cbm.concepts, cbm.kernels, cbm.app, cbm.explain; "
            "print(cbm.__file__, cbm.concepts.__file__, cbm.kernels.__file__, cbm.app.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(target)}, check=True)
    files = [Path(f) for f in out.stdout.split()]
    assert [f.relative_to(target).as_posix() for f in files] == [
        "cbm/__init__.py", "cbm/concepts/__init__.py", "cbm/kernels/__init__.py", "cbm/app/__init__.py"]


def test_public_api_names_come_from_the_modules_that_define_them():
    import cbm

    assert set(cbm.__all__) == set(cbm._EXPORTS) | {"__version__"}
    for name, module in cbm._EXPORTS.items():
        obj = getattr(cbm, name)
        assert obj is getattr(importlib.import_module(module), name), name
        assert getattr(obj, "__module__", "").startswith("cbm."), (name, obj)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cbm.nope  # noqa: B018


def test_cbm_explain_is_always_the_module():
    code = "import cbm, types; print(isinstance(cbm.explain, types.ModuleType), cbm.explain.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "cbm.explain"]
