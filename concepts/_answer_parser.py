"""Concepts out of an LLM answer, as real models write them, with a record of what was dropped.

Accepted shapes: a JSON list (also inside a code fence or prose), a JSON object holding a list,
or a bulleted / numbered / one-per-line text list. Each item loses markdown (``**bold**``,
``*italics*``, backticks, headings) and list markers (``1.``, ``1)``, ``(1)``, ``3 -``, ``•``,
``*``, ``-``, ``+``, ``a)``). Dropped, each with its reason: prose around the list (a closing
sentence, "Sure! Here you go:"), refusals ("I'm sorry ...", "As an AI ..."), bare yes/no answers,
non-strings in a JSON list (objects, numbers), items over :data:`MAX_CHARS` characters or
:data:`MAX_WORDS` words, and repeats::

    p = parse_concepts("Sure!\\n1. **red** beak\\n2. webbed feet\\nI hope this helps.")
    p.concepts   # ['red beak', 'webbed feet']
    p.dropped    # [('Sure!', 'prose outside the list'), ('I hope this helps.', 'prose outside the list')]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from cbm.bank import normalize_text

#: Longest kept concept, in characters and in words.
MAX_CHARS = 150
MAX_WORDS = 25

_MARKER = re.compile(
    r"^\s*(?:[-*+\u2022\u2023\u25cf\u25aa\u25e6\u2013\u2014]"     # - * + • ‣ ● ▪ ◦ – —
    r"|\(?\d{1,3}\s*[.)\]:]"                                         # 1. 1) (1) 1] 1:
    r"|\d{1,3}\s*[-\u2013\u2014]"                                    # 3 - / 3 – / 3-
    r"|\(?[a-zA-Z][.)])\s+")                                         # a) a.
_REFUSAL = re.compile(
    r"^(?:i['\u2019]?m sorry|i am sorry|sorry[,.!]|as an ai\b|as a(?:n ai)? language model"
    r"|i (?:can(?:no|['\u2019])t|am (?:not able|unable)|['\u2019]m (?:not able|unable)|won['\u2019]t)"
    r"|unfortunately\b|i do not have|i don['\u2019]t have)", re.IGNORECASE)
_YES_NO = {"yes", "no", "true", "false", "n/a", "none", "unknown", "maybe"}
_FILLER = {"sure", "certainly", "of course", "okay", "ok", "here you go", "absolutely", "great"}
_SENTENCE_END = re.compile(r"[.!]\s*$")


@dataclass
class ParsedConcepts:
    """What one answer gave: the ``concepts`` kept, in order, and ``dropped`` (item, reason) pairs."""

    concepts: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def why_empty(self) -> str:
        """One line on why nothing was kept (reasons counted, first examples)."""
        if not self.dropped:
            return "the answer was empty"
        counts: dict[str, int] = {}
        for _, reason in self.dropped:
            counts[reason] = counts.get(reason, 0) + 1
        first = self.dropped[0][0]
        return (", ".join(f"{n} {r}" for r, n in counts.items())
                + f"; first dropped: {first[:80]!r}")


def strip_markdown(item: str) -> str:
    """``item`` without markdown emphasis, inline code and heading/quote marks."""
    item = re.sub(r"^\s*(?:#{1,6}|>)\s*", "", item)
    item = re.sub(r"(\*\*|__)(.+?)\1", r"\2", item)
    item = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", item)
    item = re.sub(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)", r"\1", item)
    return item.replace("`", "")


def _json_items(text: str, out: ParsedConcepts) -> list | None:
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            items = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list):
            for part in (text[:start], text[end + 1 :]):
                part = re.sub(r"```\w*", "", part).strip()
                if part:
                    out.dropped.append((part[:80], "prose outside the list"))
            return items
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(obj, dict):
            # a JSON object without a list holds no concepts (its values are not a list of them)
            return next((v for v in obj.values() if isinstance(v, list)), [obj])
    return None


def _text_items(text: str, out: ParsedConcepts) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("```") and ln not in "[]{}"]
    bulleted = [bool(_MARKER.match(ln)) for ln in lines]
    items = []
    for line, is_item in zip(lines, bulleted, strict=True):
        bare = strip_markdown(_MARKER.sub("", line, count=1)).strip()
        if _REFUSAL.match(bare):
            out.dropped.append((line, "refusal"))
        elif any(bulleted) and not is_item:
            out.dropped.append((line, "prose outside the list"))
        elif bare.endswith(":") or (not is_item and _is_prose(bare)):
            out.dropped.append((line, "prose outside the list"))
        else:
            items.append(bare)
    return items


def _is_prose(line: str) -> bool:
    words = len(line.split())
    return words > 12 or (words >= 5 and bool(_SENTENCE_END.search(line)))


def parse_concepts(text: str | None) -> ParsedConcepts:
    """Parse one LLM answer into concepts, recording every dropped item and why."""
    out = ParsedConcepts()
    text = (text or "").strip()
    items = _json_items(text, out)
    if items is None:
        items = _text_items(text, out)
    seen: set[str] = set()
    for raw in items:
        if not isinstance(raw, str):
            out.dropped.append((json.dumps(raw)[:80], f"not a string ({type(raw).__name__})"))
            continue
        item = strip_markdown(_MARKER.sub("", raw.strip(), count=1))
        item = re.sub(r"\s+", " ", item).strip().strip("\"'\u201c\u201d").rstrip(".;,").strip()
        key = normalize_text(item)
        reason = None
        if not key:
            continue
        if len(item) > MAX_CHARS or len(item.split()) > MAX_WORDS:
            reason = f"too long ({len(item):,} characters; the limit is {MAX_CHARS})"
        elif _REFUSAL.match(item):
            reason = "refusal"
        elif key.strip("!.") in _YES_NO:
            reason = "a yes/no answer, not a concept"
        elif key.strip("!.") in _FILLER:
            reason = "prose outside the list"
        elif key in seen:
            reason = "repeat"
        if reason:
            out.dropped.append((item[:80], reason))
            continue
        seen.add(key)
        out.concepts.append(item)
    return out
