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
