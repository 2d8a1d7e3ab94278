"""cbm.concepts: where concepts come from, and how to keep the good ones.

Every generator returns a :class:`ConceptBank` with provenance per concept and, where the method
gives one, a class-concept prior.

Generators
    generate_llm_concepts       LLM descriptions per class (LaBo, Label-free CBM)
    generate_textbook_concepts  questions grounded in a local corpus, yes/no/unknown prior (KnoBo)
    extract_textbook_concepts   the same without an LLM: cited keyphrases of retrieved passages
    fit_cavs, cavs_from_folders concept activation vectors from example sets (PCBM, FastCAV)
    text_concepts, embed_bank   text-tower concept vectors of a multimodal encoder
    load_concepts, save_concepts, load_knobo_answers   import/export
    generate_concepts, list_sources   the one registry of sources (what ``cbm concepts generate`` uses)
Filtering and selection
    filter_concepts             Label-free CBM filters with a removal log
    select_concepts             LaBo's submodular selection (greedy_select underneath)
Client
    LLMClient                   OpenAI-compatible client: cache, retries, concurrency, cost

Submodules load on first use, so ``import cbm.concepts`` does not import openai or bm25s.
"""

from __future__ import annotations

if __name__ != "cbm.concepts":  # the repository root is on sys.path: see cbm._source_folders
    from cbm._source_folders import defer_to_installed

    defer_to_installed(__name__)
else:
    import importlib

    from cbm.bank import ConceptBank, Provenance

    _EXPORTS = {
        "LLMClient": "_llm_client",
        "LLMError": "_llm_client",
        "generate_llm_concepts": "llm",
        "parse_concept_list": "llm",
        "list_prompts": "llm",
        "load_prompt": "llm",
        "generate_textbook_concepts": "textbook",
        "answer_prior": "textbook",
        "load_corpus": "textbook",
        "load_knobo_answers": "textbook",
        "make_retriever": "textbook",
        "extract_textbook_concepts": "keyphrases",
        "concept_overlap": "keyphrases",
        "BM25Retriever": "textbook",
        "DenseRetriever": "textbook",
        "fit_cav": "cav",
        "fit_cavs": "cav",
        "cavs_from_folders": "cav",
        "text_concepts": "text",
        "embed_bank": "text",
        "load_concepts": "files",
        "save_concepts": "files",
        "read_lines": "files",
        "filter_concepts": "filters",
        "select_concepts": "select",
        "greedy_select": "select",
        "discriminability": "select",
        "ConceptSource": "sources",
        "SourceRequest": "sources",
        "generate_concepts": "sources",
        "get_source": "sources",
        "list_sources": "sources",
    }

    __all__ = ["ConceptBank", "Provenance", "SOURCES", *sorted(_EXPORTS)]


    def __getattr__(name: str):
        if name == "SOURCES":  # the registry's names, as a tuple (cbm.concepts.sources is the registry)
            from cbm.concepts.sources import list_sources

            return tuple(list_sources())
        if name in _EXPORTS:
            return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        raise AttributeError(f"module 'cbm.concepts' has no attribute {name!r}")
