"""OpenAI-compatible chat client with an on-disk response cache, retries, bounded concurrency
and token/cost accounting.

Works with any server that speaks the chat-completions API (OpenAI, vLLM, llama.cpp server,
Ollama). The API key comes from the argument or the environment (``CBM_LLM_API_KEY``, then
``OPENAI_API_KEY``); it is never logged, cached, hashed into cache keys or stored in provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbm._io import atomic_write_json
from cbm.exceptions import CBMError

API_KEY_ENV = ("CBM_LLM_API_KEY", "OPENAI_API_KEY")
DEFAULT_CACHE = Path(os.environ.get("CBM_CACHE_DIR", Path.home() / ".cache" / "cbmkit")) / "llm"

#: USD per one million tokens (input, output); extend with ``prices=`` for other models.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-3.5-turbo": (0.5, 1.5),
}


class LLMError(CBMError, RuntimeError):
    """The language-model endpoint refused or failed a request."""


@dataclass
class Usage:
    """Token and cost totals of one client (thread-safe counters)."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("requests", "cached", "prompt_tokens", "completion_tokens", "cost_usd", "retries")}


@dataclass
class ChatResult:
    """One answer: its text, token counts and whether it came from the cache."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


class LLMClient:
    """Chat-completions client for one endpoint and model.

    Parameters
    ----------
    model : str
        Model name as the server knows it ("gpt-4o-mini", "llama3", ...).
    base_url : str, optional
        Endpoint, e.g. ``http://localhost:8000/v1``; default OpenAI's (or ``CBM_LLM_BASE_URL``).
    api_key : str, optional
        Secret key; default from ``CBM_LLM_API_KEY`` / ``OPENAI_API_KEY``. Local servers need none.
    cache_dir : path or None
        Response cache folder; ``None`` disables caching. A rerun with the same endpoint, model,
        messages and sampling parameters costs nothing and works offline.
    max_retries : int
        Retries on 429, 5xx, timeouts and connection errors, with exponential backoff.
    backoff : float
        First backoff in seconds (doubled each retry, with jitter). Keep tiny in tests.
    timeout : float
        Per-request timeout in seconds.
    concurrency : int
        Most requests in flight at once in :meth:`chat_many`.
    prices : mapping, optional
        ``{model: (usd_per_1M_input, usd_per_1M_output)}``, merged over :data:`DEFAULT_PRICES`.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path | None = DEFAULT_CACHE,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        concurrency: int = 4,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url or os.environ.get("CBM_LLM_BASE_URL") or "https://api.openai.com/v1"
        self._api_key = api_key or next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency))
        self.prices = {**DEFAULT_PRICES, **dict(prices or {})}
        self.usage = Usage()
        self._client = None

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    # -- cache ----------------------------------------------------------------------------
    def cache_key(self, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]) -> str:
        """Hash of endpoint, model, messages and sampling parameters (no secrets)."""
        blob = json.dumps(
            {"base_url": self.base_url.rstrip("/"), "model": self.model,
             "messages": list(messages), "params": dict(sorted(params.items()))},
            sort_keys=True, ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def _cache_file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    # -- requests -------------------------------------------------------------------------
    def _openai(self):
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self._api_key or "not-needed",
                timeout=self.timeout, max_retries=0,
            )
        return self._client

    def chat(self, prompt: str | Sequence[Mapping[str, str]], *, temperature: float = 0.0,
             max_tokens: int = 512, seed: int | None = None, use_cache: bool = True) -> ChatResult:
        """Send one prompt (a string or chat messages) and return the answer text."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        params = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            params["seed"] = seed
        path = self._cache_file(self.cache_key(messages, params))
        if use_cache and path is not None and path.is_file():
            try:
                hit = json.loads(path.read_text())
                with self.usage._lock:
                    self.usage.cached += 1
                return ChatResult(hit["text"], hit.get("prompt_tokens", 0),
                                  hit.get("completion_tokens", 0), cached=True)
            except (json.JSONDecodeError, KeyError):
                pass  # a corrupt entry is refetched and overwritten
        result = self._request(messages, params)
        if path is not None:
            atomic_write_json(path, {"text": result.text, "prompt_tokens": result.prompt_tokens,
                                     "completion_tokens": result.completion_tokens,
                                     "model": self.model})
        return result

    def chat_many(self, prompts: Sequence[str | Sequence[Mapping[str, str]]], **kwargs: Any
                  ) -> list[ChatResult]:
        """:meth:`chat` over many prompts with at most ``concurrency`` in flight; order kept."""
        if self.concurrency == 1 or len(prompts) <= 1:
            return [self.chat(p, **kwargs) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self.chat(p, **kwargs), prompts))

    def _request(self, messages: list, params: dict) -> ChatResult:
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                resp = self._openai().chat.completions.create(
                    model=self.model, messages=messages, **params)
                break
            except openai.AuthenticationError:
                raise LLMError(
                    f"The endpoint {self.base_url!r} rejected the API key (401). Set a valid key in "
                    f"{API_KEY_ENV[0]} or {API_KEY_ENV[1]}, or pass api_key=."
                ) from None
            except openai.NotFoundError:
                raise LLMError(
                    f"The endpoint {self.base_url!r} does not know model {self.model!r} (404). "
                    "Check the model name the server serves (GET /v1/models) and the base URL."
                ) from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as e:
                if attempt == self.max_retries:
                    raise LLMError(self._give_up_message(e)) from None
                with self.usage._lock:
                    self.usage.retries += 1
                time.sleep(self.backoff * (2 ** attempt) * (1 + 0.25 * random.random()))
            except openai.APIStatusError as e:
                raise LLMError(
                    f"The endpoint {self.base_url!r} answered HTTP {e.status_code} for model "
                    f"{self.model!r}: {str(e)[:200]}"
                ) from None
        choice = resp.choices[0] if resp.choices else None
        text = (choice.message.content if choice is not None and choice.message else None) or ""
        pt = int(getattr(resp.usage, "prompt_tokens", 0) or 0) if resp.usage else 0
        ct = int(getattr(resp.usage, "completion_tokens", 0) or 0) if resp.usage else 0
        with self.usage._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += pt
            self.usage.completion_tokens += ct
            self.usage.cost_usd += self.cost(pt, ct)
        return ChatResult(text, pt, ct)

    def _give_up_message(self, e: Exception) -> str:
        import openai

        if isinstance(e, openai.APITimeoutError):
            why = f"timed out after {self.timeout:g} s"
        elif isinstance(e, openai.APIConnectionError):
            why = "could not be reached (is the server running and the base URL right?)"
        else:
            why = f"kept failing with HTTP {getattr(e, 'status_code', '?')}"
        return (f"The LLM endpoint {self.base_url!r} {why}, after {self.max_retries} retries. "
                "Try again later, raise max_retries/timeout, or lower concurrency.")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of the given tokens for this model (0 when the price is unknown)."""
        pin, pout = self.prices.get(self.model, (0.0, 0.0))
        return (prompt_tokens * pin + completion_tokens * pout) / 1e6
