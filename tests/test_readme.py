"""The Python code of the README and of the documentation pages runs as written: each page's ```python
blocks, in order, in a temporary folder. And the Layout section (docs/development.md) names paths that exist."""

import re

import pytest
from docs_text import README, ROOT, code_blocks, pages, section

BLOCKS = code_blocks(README.read_text(encoding="utf-8"), "python")
DOC_PAGES = [p for p in pages() if p != README and code_blocks(p.read_text(encoding="utf-8"), "python")]


def _run_blocks(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write model directories relative to the working folder
    namespace: dict = {"__name__": "__readme__"}
    name = page.relative_to(ROOT)
    for i, code in enumerate(code_blocks(page.read_text(encoding="utf-8"), "python"), 1):
        exec(compile(code, f"{name} python block {i}", "exec"), namespace)  # later blocks may use earlier names


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    assert BLOCKS, "README.md has no ```python block"
    _run_blocks(README, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_documentation_python_blocks_run(page, tmp_path, monkeypatch):
    _run_blocks(page, tmp_path, monkeypatch)


def _layout_paths() -> list[str]:
    table = [line for line in section("Layout").splitlines() if line.startswith("| ")][1:]  # after the header
    return [p for line in table for p in re.findall(r"`([\w./]+)`", line.split("|")[2])]


def test_the_layout_section_names_files_and_folders_that_exist():
    paths = _layout_paths()
    assert {"cbm/bank.py", "concepts/", "cbm/models/", "cbm/edits/", "cbm/research/", "app/pages/", "kernels/"} <= set(paths)
    assert [p for p in paths if not (ROOT / p).exists()] == []
