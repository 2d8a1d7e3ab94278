"""Concepts written by a language model per class (LaBo, Label-free CBM).

Each class name is put into one or more prompt templates (``prompts/*.txt``, editable, or your
own); every answer is parsed into a list of short concepts. A concept remembers the classes it
was generated for (the LaBo class prior: +1 for those classes) and the raw answers.

References: Yang et al., "Language in a Bottle" (LaBo), CVPR 2023; Oikarinen et al.,
"Label-Free Concept Bottleneck Models", ICLR 2023.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cbm.bank import ConceptBank, Provenance, normalize_text
from cbm.concepts._answer_parser import ParsedConcepts, parse_concepts  # noqa: F401 (re-exported)
from cbm.exceptions import unknown_name_message

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"

#: Prompt families: name -> template names in ``prompts/``.
FAMILIES: dict[str, tuple[str, ...]] = {
    "labo": ("labo_looks", "labo_color", "labo_shape", "labo_pattern", "labo_parts"),
    "lfcbm": ("lfcbm_important", "lfcbm_superclass", "lfcbm_around"),
}

def list_prompts() -> list[str]:
    """Names of the shipped prompt templates."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))


def load_prompt(name_or_path: str | Path) -> str:
    """Template text by shipped name ("labo_color") or by path to your own ``.txt`` file.

    Templates use ``{class_name}`` (and ``{passages}``/``{concept}`` for KnoBo) as placeholders.
    """
    path = Path(name_or_path)
    if path.suffix == ".txt" and path.is_file():
        return path.read_text()
    shipped = PROMPT_DIR / f"{name_or_path}.txt"
    if shipped.is_file():
        return shipped.read_text()
    raise KeyError(unknown_name_message("prompt template", str(name_or_path), list_prompts())
                   + ". Or pass the path of your own .txt template.")


def fill(template: str, **values: str) -> str:
    """Replace ``{key}`` placeholders only (JSON braces in a template stay as they are)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", str(v))
    return template


def parse_concept_list(text: str) -> list[str]:
    """Concepts from an LLM answer: a JSON list (also inside prose or a code fence), a JSON
    object holding one list, or a numbered/bulleted/one-per-line plain-text list; markdown,
    list markers, prose, refusals, yes/no answers, non-strings and over-long items are dropped
    (:func:`parse_concepts` says which and why)."""
    return parse_concepts(text).concepts


def _accept_concepts(text: str) -> None:
    """``accept`` check for the client: an answer must yield at least one concept."""
    parsed = parse_concepts(text)
    if not parsed.concepts:
        raise ValueError(f"it yields no concepts ({parsed.why_empty()})")


def generate_llm_concepts(
    classes: Sequence[str],
    client: Any,
    family: str | Sequence[str] = "labo",
    templates: Mapping[str, str] | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
) -> ConceptBank:
    """Ask the LLM for concepts of every class and collect them into a bank.

    Parameters
    ----------
    classes : sequence of str
        Class names put into the templates.
    client : LLMClient
        Any object with ``chat_many(prompts, ...)`` and ``model`` (see ``_llm_client``).
    family : {"labo", "lfcbm"} or list of template names
        Which shipped prompt family, or template names / paths.
    templates : mapping, optional
        Your own ``{name: template text}``; overrides ``family``.

    Returns
    -------
    ConceptBank
        ``classes`` and ``prior`` (K, M) with +1 where the concept was generated for the class;
        each provenance holds templates, classes and raw answers; ``metadata["dropped"]`` lists
        every item the parser dropped (class, template, item, reason).

    Raises
    ------
    LLMError
        An answer yields no concept (it is not cached), or the endpoint fails.
    """
    if templates is None:
        if isinstance(family, str):
            if family not in FAMILIES:
                raise KeyError(unknown_name_message("prompt family", family, list(FAMILIES)))
            names = FAMILIES[family]
        else:
            names = tuple(family)
        templates = {Path(str(n)).stem: load_prompt(n) for n in names}
    jobs = [(c, t) for c in classes for t in templates]
    prompts = [fill(templates[t], class_name=c) for c, t in jobs]
    answers = client.chat_many(prompts, temperature=temperature, max_tokens=max_tokens,
                               accept=_accept_concepts)
    order: dict[str, dict[str, Any]] = {}
    dropped = []
    for (cls, tname), prompt, ans in zip(jobs, prompts, answers, strict=True):
        parsed = parse_concepts(ans.text)
        dropped += [{"class": cls, "template": tname, "item": item, "reason": why}
                    for item, why in parsed.dropped]
        for concept in parsed.concepts:
            rec = order.setdefault(normalize_text(concept), {
                "text": concept, "classes": [], "templates": [], "answers": []})
            if cls not in rec["classes"]:
                rec["classes"].append(cls)
            rec["templates"].append(tname)
            rec["answers"].append({"class": cls, "template": tname, "prompt": prompt,
                                   "raw_answer": ans.text})
    texts = [r["text"] for r in order.values()]
    prior = np.zeros((len(classes), len(texts)), np.float32)
    provenance = []
    for j, rec in enumerate(order.values()):
        for c in rec["classes"]:
            prior[list(classes).index(c), j] = 1.0
        provenance.append(Provenance("llm", {
            "classes": rec["classes"], "templates": sorted(set(rec["templates"])),
            "answers": rec["answers"]}, model=getattr(client, "model", None)))
    usage = getattr(client, "usage", None)
    meta = {"generator": "llm", "family": family if isinstance(family, str) else list(family),
            "usage": usage.as_dict() if hasattr(usage, "as_dict") else None, "dropped": dropped}
    return ConceptBank(texts, texts, provenance=provenance, classes=list(classes),
                       prior=prior, metadata=meta)
