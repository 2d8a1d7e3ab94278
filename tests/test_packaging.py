"""Packaging: one import namespace ``cbm``, and layers that import downward only."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the cbm modules it must never import (STYLE.md guideline 6)
FORBIDDEN = {
    "kernels": ("cbm.models", "cbm.concepts", "cbm.explain", "cbm.edits", "cbm.history", "cbm.cli", "cbm.app"),
    "cbm/models": ("cbm.explain", "cbm.edits", "cbm.edit_eval", "cbm.history", "cbm.cli", "cbm.app"),
    "concepts": ("cbm.models", "cbm.explain", "cbm.edits", "cbm.history", "cbm.cli", "cbm.app"),
    "cbm/explain.py": ("cbm.cli", "cbm.app"),
    "cbm/edits.py": ("cbm.cli", "cbm.app"),
    "cbm/history.py": ("cbm.cli", "cbm.app"),
    "app": ("cbm.cli",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_downward_only(layer):
    target = ROOT / layer
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    bad = [f"{f.relative_to(ROOT)} imports {m}" for f in files for m in _imports(f)
           if any(m == x or m.startswith(x + ".") for x in FORBIDDEN[layer])]
    assert not bad, bad


def test_sibling_folders_map_into_cbm_from_a_bare_checkout():
    code = (
        "import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower() "
        "and 'editable' not in type(f).__name__.lower()]; "
        f"sys.path.insert(0, {str(ROOT)!r}); "
        "import cbm.kernels, cbm.concepts, cbm.app; "
        "print(cbm.kernels.__file__, cbm.concepts.__file__, cbm.app.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    k, c, a = out.stdout.split()
    assert k.endswith("kernels/__init__.py") and c.endswith("concepts/__init__.py") and a.endswith("app/__init__.py")


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


def test_public_api_names_resolve():
    import cbm

    for name in cbm.__all__:
        assert getattr(cbm, name) is not None
