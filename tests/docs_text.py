"""The text of the documentation, for the tests that check what it says: README.md and the pages
under docs/ (the site `make docs` builds from mkdocs.yml). A section is found by its heading's title,
on whichever page holds it, so a test does not care where a section lives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")


def pages() -> list[Path]:
    """README.md, then every Markdown page under docs/ (sorted)."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            out.append((i, len(m.group(1)), m.group(2)))
    return out


def section(title: str, *, subsections: bool = False, page: Path | None = None) -> str:
    """The text under the heading ``title`` (exactly one page must have it, or ``page`` if given), up
    to the next heading; with ``subsections`` up to the next heading of the same or a higher level only."""
    found = []
    for candidate in [page] if page else pages():
        text = candidate.read_text(encoding="utf-8")
        marks = headings(text)
        for n, (i, level, name) in enumerate(marks):
            if name == title:
                end = next((j for j, lv, _ in marks[n + 1:] if not subsections or lv <= level), None)
                found.append((candidate, "\n".join(text.splitlines()[i + 1:end])))
    where = [str(p.relative_to(ROOT)) for p, _ in found]
    assert len(found) == 1, f"heading {title!r}: expected on exactly one page, found on {where or 'none'}"
    return found[0][1]


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the ```language fenced blocks of ``text``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)

