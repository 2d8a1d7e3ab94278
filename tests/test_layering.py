"""Layering: every module of the package imports downward only, without cycles or private reach-ins.

The test reads every ``.py`` file of the installed packages (``cbm/``, and ``concepts/``,
``kernels/``, ``app/`` mapped to ``cbm.concepts``, ``cbm.kernels``, ``cbm.app``) with ``ast``,
resolves relative imports, and builds the import graph from module-level imports (run at import
time) and function-level imports (run on first call, used to defer torch, open_clip or streamlit).

- no cycle among module-level imports (``if TYPE_CHECKING:`` imports never run and are left out);
- no import, at any level, from a module in a higher layer of :data:`LAYERS`;
- no ``from cbm.x import _name`` of a private name defined in another module;
- no private module (``cbm.models._base``) imported from outside its package;
- no private attribute (``model._fit``) read on anything but ``self`` or a class of the same module,
  beyond the few same-package hooks in :data:`KNOWN_REACH_INS`.

Names reached through strings (``importlib.import_module`` in ``cbm.__getattr__`` and in the model
registry of ``cbm.models``) are not imports and are not seen here.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first. A module may import from its own layer and the layers before it, never after.
#: A module belongs to the first entry whose name equals it or is a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("cbm", "cbm.exceptions", "cbm._io", "cbm._images", "cbm.arrays", "cbm.tensors")),
    ("kernels", ("cbm.kernels",)),
    ("core", ("cbm.bank", "cbm.metrics", "cbm.solvers", "cbm.losses", "cbm.shards", "cbm.store",
              "cbm.distributed")),  # the store on Ray: same layer, called by EmbeddingStore
    ("encoders", ("cbm.encoders",)),
    ("data", ("cbm.data",)),
    ("concepts", ("cbm.concepts",)),
    ("models", ("cbm.models",)),
    ("model directories and explanations", ("cbm.io", "cbm.explain", "cbm.concept_maps", "cbm.ood",
                                            "cbm.report")),
    ("edits", ("cbm.edits", "cbm.edits.kinds")),
    ("edit evaluation", ("cbm.edits.preview", "cbm.research.faithfulness")),
    ("repairs", ("cbm.edits.repair",)),
    ("edit history", ("cbm.edits.history", "cbm.edits.report")),
    ("batch predictions", ("cbm.predict",)),
    ("demo", ("cbm.demo",)),
    ("research bench", ("cbm.research", "cbm.research.annotations", "cbm.research.evaluation",
                        "cbm.research.interventions", "cbm.research.experiment",
                        "cbm.research._experiment_data")),
    ("app", ("cbm.app",)),
    ("command line", ("cbm.cli", "cbm.__main__")),
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (``from pkg import name`` -> ``pkg.name`` when that is a module)
    name: str | None  # the imported name when it is not a module
    line: int
    at_import_time: bool  # module level (class bodies included), not inside a function
    type_only: bool  # under ``if TYPE_CHECKING:``


def _package_dirs() -> dict[str, Path]:
    """Package name -> folder, as pyproject's setuptools configuration maps them."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    dirs = {}
    for pkg in tool["packages"]:
        top = max((p for p in mapping if pkg == p or pkg.startswith(p + ".")), key=len)
        dirs[pkg] = ROOT / mapping[top] / Path(*pkg[len(top):].lstrip(".").split(".")) \
            if pkg != top else ROOT / mapping[top]
    return dirs


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed packages: name -> (file, is_package)."""
    mods = {}
    for pkg, folder in _package_dirs().items():
        for f in sorted(folder.glob("*.py")):
            is_pkg = f.stem == "__init__"
            mods[pkg if is_pkg else f"{pkg}.{f.stem}"] = (f, is_pkg)
    return mods


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_pkg else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(module: str) -> list[Import]:
    path, is_pkg = MODULES[module]
    out: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend(Import(module, a.name, None, child.lineno, not in_function, type_only)
                           for a in child.names if a.name.split(".")[0] == "cbm")
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, is_pkg, child)
                if base.split(".")[0] != "cbm":
                    continue
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    out.append(Import(module, sub, None, child.lineno, not in_function, type_only)
                               if sub in MODULES else
                               Import(module, base, a.name, child.lineno, not in_function, type_only))
            else:
                fn = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                tc = isinstance(child, ast.If) and _is_type_checking(child)
                visit(child, in_function or fn, type_only or tc)

    visit(ast.parse(path.read_text(), str(path)), False, False)
    return out


IMPORTS = [imp for m in sorted(MODULES) for imp in _imports(m)]


def _layer(module: str) -> int:
    best = None
    for i, (_, members) in enumerate(LAYERS):
        for m in members:
            if (module == m or module.startswith(m + ".")) and (best is None or len(m) > best[1]):
                best = (i, len(m))
    if best is None:
        raise KeyError(module)
    return best[0]


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source][0].relative_to(ROOT)}:{imp.line}"


def test_every_module_of_every_package_is_read_and_has_a_layer():
    folders = {"cbm": ROOT / "cbm", "concepts": ROOT / "concepts", "kernels": ROOT / "kernels",
               "app": ROOT / "app"}
    on_disk = {f.resolve() for d in folders.values() for f in d.rglob("*.py") if "__pycache__" not in f.parts}
    read = {f.resolve() for f, _ in MODULES.values()}
    assert on_disk - read == set(), "modules outside the packages listed in pyproject.toml"
    unplaced = []
    for m in MODULES:
        try:
            _layer(m)
        except KeyError:
            unplaced.append(m)
    assert not unplaced, f"add these modules to a layer in LAYERS: {unplaced}"


def test_imports_resolve_to_modules_of_the_package():
    unknown = [f"{_where(i)} imports {i.target}" for i in IMPORTS if i.target not in MODULES]
    assert not unknown, unknown


def test_relative_imports_are_resolved():
    """The app imports its helpers relatively; they must appear in the graph as cbm.app modules."""
    targets = {i.target for i in IMPORTS if i.source.startswith("cbm.app.")}
    assert {"cbm.app._keys", "cbm.app._cache", "cbm.app._args"} <= targets


def test_no_module_imports_from_a_higher_layer():
    bad = [f"{_where(i)}: {i.source} ({LAYERS[_layer(i.source)][0]}) imports {i.target} "
           f"({LAYERS[_layer(i.target)][0]})"
           for i in IMPORTS if i.target in MODULES and _layer(i.target) > _layer(i.source)]
    assert not bad, "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def _import_time_edges() -> dict[str, set[str]]:
    """Module -> modules executed when it is imported (the target and the packages above it)."""
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        if not i.at_import_time or i.type_only or i.target not in MODULES:
            continue
        parts = i.target.split(".")
        for n in range(2, len(parts) + 1):  # importing cbm.a.b runs cbm.a/__init__ too
            t = ".".join(parts[:n])
            if t in MODULES and t != i.source and not i.source.startswith(t + "."):
                edges.setdefault(i.source, set()).add(t)
    return edges


def test_no_import_cycles_at_import_time():
    cycles = _cycles(_import_time_edges())
    assert not cycles, cycles


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _mutual_pairs(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of modules that import each other, each pair once, sorted."""
    return sorted({(min(a, b), max(a, b)) for a, targets in edges.items() for b in targets
                   if a != b and a in edges.get(b, ())})


def _edges_at_any_level() -> dict[str, set[str]]:
    """Module -> modules it imports, at import time or inside a function (``TYPE_CHECKING`` left out)."""
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        if not i.type_only and i.target in MODULES:
            edges.setdefault(i.source, set()).add(i.target)
    return edges


def test_no_two_modules_import_each_other_at_any_level():
    """A function-level import back into a module that imports you is a cycle waiting to be hoisted."""
    pairs = _mutual_pairs(_edges_at_any_level())
    assert pairs == [], "these modules import each other"


def test_mutual_pair_finder_finds_a_planted_pair():
    assert _mutual_pairs({"a": {"b", "c"}, "b": {"a"}, "c": {"d"}, "d": set()}) == [("a", "b")]
    assert _mutual_pairs({"a": {"a", "b"}, "b": set()}) == []


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{_where(i)}: {i.source} imports {i.name} from {i.target}"
           for i in IMPORTS if i.name and i.name.startswith("_") and not i.name.startswith("__")
           and i.target != i.source]
    assert not bad, "\n".join(bad)



#: Private attributes read on something other than ``self``, legitimately inside one module or package,
#: as ``(module, "expr._name")``. Anything else a module needs from another is public API.
KNOWN_REACH_INS = {
    ("cbm.models._base", "model._concept_bank"),  # the base class's hook, called in its own module
    # the Encoder subclass hook for patch tokens, called by the token view in the same package
    ("cbm.encoders._base", "base._encode_tokens_batch"),
    ("cbm.encoders._base", "self.base._encode_tokens_batch"),
    ("cbm.cli.edit_cmd", "r._1"),  # a pandas itertuples field, not a private attribute
    ("cbm.concepts._llm_client", "self.usage._lock"),  # the lock of its own usage counter
}
#: scikit-learn's convention: subclasses extend their parent's parameter table
SHARED_BY_CONVENTION = {"_parameter_constraints"}


def _reach_ins(module: str) -> set[tuple[str, str]]:
    """``expr._name`` attribute reads on anything but ``self``/``cls`` or a class of this module."""
    tree = ast.parse(MODULES[module][0].read_text())
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    found = set()
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")):
            continue
        base = ast.unparse(n.value)
        if base in ("self", "cls", "super()") or base in own or n.attr in SHARED_BY_CONVENTION:
            continue
        found.add((module, f"{base}.{n.attr}"))
    return found


def test_no_new_private_attribute_is_reached_from_another_module():
    new = sorted(r for m in MODULES for r in _reach_ins(m) if r not in KNOWN_REACH_INS)
    assert not new, f"make these public (or move the code next to them): {new}"


def test_private_modules_are_imported_only_inside_their_package():
    """``cbm.models._base`` may be imported by ``cbm.models.*``, not by ``cbm.edits.preview``."""
    bad = []
    for i in IMPORTS:
        parts = i.target.split(".")
        for n, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                package = ".".join(parts[:n])
                inside = i.source == package or i.source.startswith(package + ".")
                if not inside:
                    bad.append(f"{_where(i)}: {i.source} imports {i.target}")
                break
    assert not bad, "\n".join(bad)


#: loose modules directly in ``cbm/`` (``__init__.py`` aside); more go into a package of their kind
MAX_TOP_LEVEL_MODULES = 20


def test_cbm_keeps_at_most_20_modules_outside_its_packages():
    loose = sorted(f.name for f in (ROOT / "cbm").glob("*.py") if f.name != "__init__.py")
    assert len(loose) <= MAX_TOP_LEVEL_MODULES, (
        f"{len(loose)} modules directly in cbm/ (at most {MAX_TOP_LEVEL_MODULES}): move some into the "
        f"package of their kind (docs/development.md, Layout): {loose}")


def _readme_layout() -> str:
    """The Layout section of the documentation (docs/development.md)."""
    from docs_text import section

    return section("Layout")


def test_every_package_named_in_the_readme_layout_exists():
    """The Layout section names one home per kind of thing; each folder is a package of the install."""
    import re

    section = _readme_layout()
    folders = sorted(set(re.findall(r"`((?:cbm|concepts|kernels|app)/(?:\w+/)*)`", section)))
    names = sorted(set(re.findall(r"`(cbm(?:\.\w+)+)`", section)))
    assert {"cbm/edits/", "cbm/research/", "cbm/data/", "cbm/encoders/", "cbm/models/", "concepts/",
            "kernels/", "app/", "cbm/cli/", "cbm/demo/"} <= set(folders)
    packages = {str(folder.relative_to(ROOT)) + "/" for folder in _package_dirs().values()}
    assert [f for f in folders if f not in packages] == [], "folders in the README that are not packages"
    import cbm

    moved = {old for old, new in cbm._MOVED.items() if new in MODULES}  # old paths, still importable
    assert [n for n in names if n not in MODULES and n not in moved] == [], "names in the README that are not modules"


#: a module past this many lines is two modules (issue 27)
MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines():
    long = sorted(f"{name} ({n} lines)" for name, (path, *_) in MODULES.items()
                  if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES)
    assert long == [], f"split these along a seam (docs/development.md, Layout): {long}"
