"""The "What is verified on what" table (docs/verification.md) stays true: every row marked verified on real
images names a test that exists, and those tests are the ones that run the claim."""

import ast
import re
from pathlib import Path

from docs_text import section

ROOT = Path(__file__).resolve().parents[1]


def table_rows() -> list[dict[str, str]]:
    lines = [ln for ln in section("What is verified on what").splitlines() if ln.startswith("|")]  # to its first subsection
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True))
            for ln in lines[2:]]


def test_table_lists_every_method_and_source():
    names = {r["what"] for r in table_rows()}
    for method in ("PCBM", "PCBM-h", "LaBo", "KnoBo", "Sparse-CBM", "Label-free CBM",
                   "Concept Matrix Search", "dense head"):
        assert method in names
    assert {"LLM concepts", "CAVs", "text-tower concepts"} <= names


def test_every_verified_row_names_an_existing_test():
    rows = [r for r in table_rows() if r["verified on"] == "real images"]
    assert len(rows) >= 10
    for row in rows:
        ref = re.fullmatch(r"`([\w/]+\.py)::(\w+)`", row["test"])
        assert ref, f"{row['what']}: a verified row must name one test as `file::function`"
        path, name = ROOT / ref.group(1), ref.group(2)
        assert path.is_file(), f"{row['what']}: {path} does not exist"
        functions = {n.name for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, ast.FunctionDef)}
        assert name in functions, f"{row['what']}: {ref.group(1)} has no test {name}"


def test_rows_not_verified_on_real_images_say_where_they_were_checked():
    for row in table_rows():
        assert row["verified on"] in {"real images", "synthetic world"}, row
        if row["verified on"] == "synthetic world":
            assert (ROOT / row["test"].strip("`").split("::")[0]).exists(), row
