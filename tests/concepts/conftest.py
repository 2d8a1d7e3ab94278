"""Fixtures for concept tests: a real OpenAI-compatible HTTP server on 127.0.0.1 (see
``fake_llm.py``), a fake text encoder with controlled embeddings, and the corpus in ``corpus/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_llm import FakeTextEncoder, serve

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def llm_server():
    """A running fake endpoint; yields (base_url, FakeLLM)."""
    with serve() as pair:
        yield pair


@pytest.fixture
def make_client(llm_server, tmp_path):
    """Factory for an LLMClient on the fake server with tiny backoff and a temp cache."""
    from cbm.concepts import LLMClient

    base_url, _ = llm_server

    def make(**kw):
        kw.setdefault("cache_dir", tmp_path / "llm-cache")
        kw.setdefault("backoff", 0.001)
        kw.setdefault("timeout", 5.0)
        kw.setdefault("api_key", "sk-test-secret")
        return LLMClient("test-model", base_url=base_url, **kw)

    return make


@pytest.fixture
def text_encoder() -> FakeTextEncoder:
    return FakeTextEncoder()


@pytest.fixture
def corpus_dir() -> Path:
    return CORPUS
