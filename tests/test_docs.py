"""The README stays short and the documentation site builds: README.md at most 250 lines with its
first Python example near the top, every page in mkdocs.yml's nav exists and every page is in it,
every relative link of README.md and docs/ points to a file (and heading) that exists, the commands
the own-data pages show are the ones their tests run, and ``mkdocs build --strict`` passes."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from docs_text import DOCS, README, ROOT, code_blocks, headings, pages, section

MAX_README_LINES = 250
FIRST_EXAMPLE_BY = 80
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _nav_pages() -> list[str]:
    """Every page named in mkdocs.yml's nav (read as text: the file's tags need no YAML loader)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    return re.findall(r"^\s+-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", nav, flags=re.M)


def _slug(title: str) -> str:
    """The anchor Python-Markdown's toc (MkDocs) and GitHub give a heading, for plain-text titles."""
    text = unicodedata.normalize("NFKD", re.sub(r"[`*]", "", title)).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def _links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # not inside code blocks
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]  # relative only


def test_readme_is_at_most_250_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/ (at most {MAX_README_LINES})"


def test_readme_shows_python_within_its_first_80_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    first = next((i for i, line in enumerate(lines, 1) if line.startswith("```python")), None)
    assert first is not None and first <= FIRST_EXAMPLE_BY, f"first ```python block at line {first}"
    assert len(code_blocks(README.read_text(encoding="utf-8"), "python")[0].splitlines()) <= 20


def test_readme_keeps_the_two_commands():
    setup = section("Set-up: two commands", page=README)
    commands = [line.split("#", 1)[0].strip() for line in code_blocks(setup, "bash")[0].splitlines()]
    assert commands == ["make demo", "make test"]


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    nav = _nav_pages()
    assert "index.md" in nav and len(nav) == len(set(nav))
    assert [p for p in nav if not (DOCS / p).is_file()] == []
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_hooks" not in p.parts}
    assert sorted(on_disk - set(nav)) == [], "pages under docs/ that the nav leaves out"


def test_every_relative_link_points_to_a_file_and_heading_that_exist():
    broken = []
    for page in pages():
        for target in _links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(t) for _, _, t in headings(dest.read_text(encoding="utf-8"))}
                if anchor not in slugs:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def _shown_commands(text: str) -> list[str]:
    """``cbm SUB`` (``cbm edit ACTION`` for edits) for each command of a section's bash blocks, repeats dropped."""
    out: list[str] = []
    for block in code_blocks(text, "bash"):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] != ["cbm"] or len(words) < 2:
                continue
            name = f"{words[1]} {words[3]}" if words[1] == "edit" else words[1]
            name = f"{name} {words[2]}" if words[1] == "concepts" else name
            if not out or out[-1] != name:
                out.append(name)
    return out


def _name(command: str, action: str | None) -> str:
    return f"{command} {action}" if command in ("edit", "concepts") else command


def _run_commands(*test_files: str) -> list[str]:
    """The same names for every ``run_cli([...])`` call in the given test files, in order."""
    out: list[str] = []
    for file in test_files:
        for node in ast.walk(ast.parse((ROOT / file).read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "run_cli" and node.args
                    and isinstance(node.args[0], ast.List)):
                words = [e.value if isinstance(e, ast.Constant) else None for e in node.args[0].elts]
                name = _name(words[0], words[2] if words[0] == "edit" else words[1] if len(words) > 1 else None)
                if not out or out[-1] != name:
                    out.append(name)
    return out


def test_find_and_fix_a_shortcut_shows_the_commands_its_walkthrough_test_runs():
    shown = _shown_commands(section("Your own data: find and fix a shortcut"))
    assert shown == ["embed", "train", "eval", "discover", "edit add-concept", "edit save", "edit repair"]
    assert _run_commands("tests/cli/test_find_and_fix_a_shortcut.py") == shown


def test_your_own_data_shows_the_commands_its_tests_run():
    shown = _shown_commands(section("Your own data"))
    run = set(_run_commands("tests/cli/conftest.py", "tests/cli/test_your_own_data.py"))
    assert shown == ["embed", "concepts generate", "train", "explain"]
    assert set(shown) <= run


def test_mkdocs_builds_the_site_strictly_offline(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(m.split(".")[0]) is None
               or (m == "mkdocstrings_handlers.python" and importlib.util.find_spec(m) is None)]
    if missing:
        pytest.skip(f"mkdocs, mkdocs-material and mkdocstrings[python] are not installed ({', '.join(missing)}); "
                    "`pip install -e '.[dev]'` installs them")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                          "--config-file", str(ROOT / "mkdocs.yml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-8000:]
    print(f"mkdocs build --strict: {seconds:.1f} s")
    assert (site / "index.html").is_file() and (site / "guide" / "clinicians" / "index.html").is_file()
    api = (site / "api" / "edits" / "index.html").read_text(encoding="utf-8")
    assert 'id="cbm.edits.EraseConcept"' in api and 'id="cbm.edits.repair.suggest_repairs"' in api
    concepts = (site / "api" / "concepts" / "index.html").read_text(encoding="utf-8")
    assert 'id="cbm.concepts.cav' in concepts  # the folder the install maps into cbm, found by the hook
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
