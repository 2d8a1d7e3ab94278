"""OpenAI-compatible chat client with an on-disk response cache, retries, bounded concurrency
and token/cost accounting.

Works with any server that speaks the chat-completions API (OpenAI, vLLM, llama.cpp server,
Ollama). The API key comes from the argument or the environment (``CBM_LLM_API_KEY``, then
``OPENAI_API_KEY``); it is never logged, cached, hashed into cache keys or stored in provenance.

Bounded waiting: each attempt ends after ``timeout`` seconds, a prompt gets at most
``max_retries`` retries, and ``time_budget`` caps the whole client's wall time (every attempt's
timeout and backoff is cut to what is left). An empty answer, ``null`` content, ``choices: []``,
a body that is not JSON (an HTML page from a proxy) and an answer the caller's ``accept`` check
refuses are errors and are never cached; a cached answer that ``accept`` refuses is fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbm._io import atomic_write_json
from cbm.exceptions import CBMError
from cbm.store import default_cache_dir

API_KEY_ENV = ("CBM_LLM_API_KEY", "OPENAI_API_KEY")
DEFAULT_CACHE = default_cache_dir() / "llm"

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
        Per-attempt timeout in seconds.
    time_budget : float, optional
        Most seconds this client may spend on requests in all (from its first request); when
        spent, the next attempt fails with :class:`LLMError`. None: no overall limit.
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
        time_budget: float | None = None,
    ) -> None:
        for what, value in (("timeout", timeout), ("time_budget", time_budget)):
            if value is not None and not float(value) > 0:
                raise ValueError(f"{what} must be a positive number of seconds; got {value!r}.")
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must be >= 0; got {max_retries!r}.")
        self.model = model
        self.base_url = base_url or os.environ.get("CBM_LLM_BASE_URL") or "https://api.openai.com/v1"
        self._api_key = api_key or next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency))
        self.prices = {**DEFAULT_PRICES, **dict(prices or {})}
        self.time_budget = None if time_budget is None else float(time_budget)
        self.usage = Usage()
        self._client = None
        self._deadline: float | None = None
        self._abort = threading.Event()

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
             max_tokens: int = 512, seed: int | None = None, use_cache: bool = True,
             accept: Callable[[str], Any] | None = None) -> ChatResult:
        """Send one prompt (a string or chat messages) and return the answer text.

        ``accept(text)`` may raise ValueError to refuse an answer (e.g. one that yields no
        concepts): a refused answer is not cached and becomes an :class:`LLMError`; a refused
        cached answer is fetched again.
        """
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        params = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            params["seed"] = seed
        path = self._cache_file(self.cache_key(messages, params))
        if use_cache and path is not None and path.is_file():
            hit = self._cached(path, accept)
            if hit is not None:
                return hit
        result = self._request(messages, params)
        if accept is not None:
            try:
                accept(result.text)
            except ValueError as e:
                raise LLMError(f"The LLM at {self.base_url!r} (model {self.model!r}) gave an unusable "
                               f"answer to {_short(messages[-1].get('content', ''))!r}: {e}. It was "
                               f"not cached; answer starts {_short(result.text)!r}.") from None
        if path is not None:
            atomic_write_json(path, {"text": result.text, "prompt_tokens": result.prompt_tokens,
                                     "completion_tokens": result.completion_tokens,
                                     "model": self.model})
        return result

    def _cached(self, path: Path, accept: Callable[[str], Any] | None) -> ChatResult | None:
        try:
            hit = json.loads(path.read_text())
            text = hit["text"]
            if not isinstance(text, str) or not text.strip():
                return None  # an empty answer cached by an older version: fetch again
            if accept is not None:
                accept(text)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a corrupt or refused entry is refetched and overwritten
        with self.usage._lock:
            self.usage.cached += 1
        return ChatResult(text, hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0), cached=True)

    def chat_many(self, prompts: Sequence[str | Sequence[Mapping[str, str]]], **kwargs: Any
                  ) -> list[ChatResult]:
        """:meth:`chat` over many prompts with at most ``concurrency`` in flight; order kept.

        The first error is raised at once: queued prompts are cancelled, and a request still in
        flight ends within its timeout without another attempt.
        """
        if self.concurrency == 1 or len(prompts) <= 1:
            return [self.chat(p, **kwargs) for p in prompts]
        def chat_or_stop(prompt: Any) -> ChatResult:
            try:
                return self.chat(prompt, **kwargs)
            except BaseException:
                self._abort.set()  # no other prompt starts another attempt
                raise

        self._abort.clear()
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = [pool.submit(chat_or_stop, p) for p in prompts]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in futures if f in done and f.exception()), None)
            if failed is not None:
                raise failed
            return [f.result() for f in futures]
        except BaseException:
            self._abort.set()
            raise
        finally:  # a request still in flight ends within its timeout, in the background
            pool.shutdown(wait=False, cancel_futures=True)

    def _remaining(self) -> float | None:
        """Seconds left of ``time_budget`` (starting the clock on first use), or None."""
        if self.time_budget is None:
            return None
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.time_budget
        return self._deadline - now

    def _budget_error(self) -> LLMError:
        return LLMError(f"The time budget of {self.time_budget:g} s for the LLM endpoint {self.base_url!r} "
                        f"is spent ({self.usage.requests} answers, {self.usage.retries} retries). Raise it "
                        "(time_budget=, --time-budget), or check that the server answers.")

    def _request(self, messages: list, params: dict) -> ChatResult:
        import openai

        for attempt in range(self.max_retries + 1):
            if self._abort.is_set():
                raise LLMError("Stopped: another request to the LLM endpoint failed first.")
            left = self._remaining()
            if left is not None and left <= 0:
                raise self._budget_error()
            timeout = self.timeout if left is None else min(self.timeout, left)
            try:
                resp = self._openai().chat.completions.create(
                    model=self.model, messages=messages, timeout=timeout, **params)
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
                left = self._remaining()
                if left is not None and left <= 0:
                    raise self._budget_error() from None
                if attempt == self.max_retries:
                    raise LLMError(self._give_up_message(e)) from None
                with self.usage._lock:
                    self.usage.retries += 1
                pause = self.backoff * (2 ** attempt) * (1 + 0.25 * random.random())
                time.sleep(pause if left is None else max(0.0, min(pause, left)))
            except openai.APIStatusError as e:
                raise LLMError(
                    f"The endpoint {self.base_url!r} answered HTTP {e.status_code} for model "
                    f"{self.model!r}: {str(e)[:200]}"
                ) from None
            except openai.APIResponseValidationError as e:
                raise LLMError(self._not_chat_message(getattr(e, "body", None))) from None
            except json.JSONDecodeError as e:  # declared JSON, sent something else
                raise LLMError(self._not_chat_message(e.doc)) from None
        text, pt, ct = self._answer(resp)
        with self.usage._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += pt
            self.usage.completion_tokens += ct
            self.usage.cost_usd += self.cost(pt, ct)
        return ChatResult(text, pt, ct)

    def _answer(self, resp: Any) -> tuple[str, int, int]:
        """(text, prompt tokens, completion tokens) of a response, or LLMError saying what is wrong."""
        choices = getattr(resp, "choices", None)
        if not hasattr(resp, "choices") or (choices is not None and not isinstance(choices, list)):
            raise LLMError(self._not_chat_message(resp))
        if not choices:
            raise LLMError(f"The endpoint {self.base_url!r} answered with no choices (choices: "
                           f"{choices!r}) for model {self.model!r}; nothing was cached. Check the "
                           "server's logs, or try another model.")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str) or not text.strip():
            reason = getattr(choices[0], "finish_reason", None)
            raise LLMError(f"The endpoint {self.base_url!r} answered with empty content ({text!r}, "
                           f"finish_reason {reason!r}) for model {self.model!r}; nothing was cached. "
                           "Raise max_tokens, check the server, or try again later.")
        usage = getattr(resp, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        ct = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
        return text, pt, ct

    def _not_chat_message(self, body: Any) -> str:
        return (f"The endpoint {self.base_url!r} did not answer with chat-completions JSON (the body "
                f"starts {_short(str(body))!r}). Is the base URL an OpenAI-compatible '/v1' endpoint "
                "and not a proxy or login page?")

    def _give_up_message(self, e: Exception) -> str:
        import openai

        if isinstance(e, openai.APITimeoutError):
            why = f"timed out after {self.timeout:g} s"
        elif isinstance(e, openai.APIConnectionError):
            why = "could not be reached (is the server running and the base URL right?)"
        else:
            why = f"kept failing with HTTP {getattr(e, 'status_code', '?')}"
        return (f"The LLM endpoint {self.base_url!r} {why}, after {self.max_retries} retries. "
                "Try again later, raise max_retries=/timeout= (cbm concepts generate --max-retries/"
                "--timeout), or lower concurrency.")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of the given tokens for this model (0 when the price is unknown)."""
        pin, pout = self.prices.get(self.model, (0.0, 0.0))
        return (prompt_tokens * pin + completion_tokens * pout) / 1e6


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."
