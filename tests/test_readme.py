"""The README's Python code runs as written: its ```python blocks, in order, in a temporary folder."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    assert BLOCKS, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # the examples write model directories relative to the working folder
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(BLOCKS, 1):  # later blocks may use names from earlier ones
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)


def _layout_paths() -> list[str]:
    section = README.read_text().split("### Layout\n", 1)[1].split("\n#", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]  # after the header
    return [p for line in table for p in re.findall(r"`([\w./]+)`", line.split("|")[2])]


def test_the_layout_section_names_files_and_folders_that_exist():
    root = README.parent
    paths = _layout_paths()
    assert {"cbm/bank.py", "concepts/", "cbm/models/", "cbm/edits/", "cbm/research/", "app/pages/", "kernels/"} <= set(paths)
    assert [p for p in paths if not (root / p).exists()] == []
