"""LLMClient against a real HTTP server on 127.0.0.1: answers, cache, retries, errors, cost."""

import json
import time

import pytest

from cbm.concepts import LLMClient, LLMError


def test_chat_returns_text_and_counts_tokens_and_cost(make_client):
    client = make_client(prices={"test-model": (1.0, 2.0)})
    res = client.chat("List concepts of a cat")
    assert res.text == '["concept one", "concept two"]'
    assert (res.prompt_tokens, res.completion_tokens, res.cached) == (10, 5, False)
    assert client.usage.requests == 1
    assert client.usage.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)


def test_rerun_is_served_from_cache_without_network(make_client, llm_server):
    _, fake = llm_server
    make_client().chat("hello", temperature=0.0)
    again = make_client()  # a new client (new process) reads the same cache
    res = again.chat("hello", temperature=0.0)
    assert res.cached and len(fake.requests) == 1
    assert again.usage.cached == 1 and again.usage.requests == 0
    # other sampling parameters are a different key
    again.chat("hello", temperature=0.7)
    assert len(fake.requests) == 2


def test_api_key_is_sent_but_never_cached(make_client, llm_server, tmp_path):
    _, fake = llm_server
    client = make_client()
    client.chat("secret test")
    assert fake.headers[0]["authorization"] == "Bearer sk-test-secret"
    cached = "".join(p.read_text() for p in (tmp_path / "llm-cache").rglob("*.json"))
    assert "sk-test-secret" not in cached and "sk-test-secret" not in repr(client)
    assert "sk-test" not in json.dumps(client.cache_key([{"role": "user", "content": "x"}], {}))


def test_key_comes_from_environment(make_client, llm_server, monkeypatch):
    _, fake = llm_server
    monkeypatch.setenv("CBM_LLM_API_KEY", "sk-from-env")
    make_client(api_key=None).chat("env")
    assert fake.headers[0]["authorization"] == "Bearer sk-from-env"


@pytest.mark.parametrize("failure", ["429", "500", "503"])
def test_retries_on_rate_limit_and_server_errors_then_succeeds(make_client, llm_server, failure):
    _, fake = llm_server
    fake.script([failure, failure, "ok"])
    client = make_client(cache_dir=None)
    assert client.chat("retry me").text.startswith("[")
    assert len(fake.requests) == 3 and client.usage.retries == 2


def test_timeout_is_retried(make_client, llm_server):
    _, fake = llm_server
    fake.stall_s = 0.6
    fake.script(["stall", "ok"])
    client = make_client(cache_dir=None, timeout=0.2)
    assert client.chat("slow").text.startswith("[")
    assert client.usage.retries == 1


def test_gives_up_after_max_retries_with_clear_message(make_client, llm_server):
    _, fake = llm_server
    fake.script(["500"] * 3)
    with pytest.raises(LLMError, match="kept failing with HTTP 500, after 2 retries"):
        make_client(cache_dir=None, max_retries=2).chat("x")


def test_bad_key_is_a_clear_error_without_retry(make_client, llm_server):
    _, fake = llm_server
    fake.script(["401"])
    with pytest.raises(LLMError, match="rejected the API key.*CBM_LLM_API_KEY"):
        make_client().chat("x")
    assert len(fake.requests) == 1


def test_unknown_model_is_a_clear_error(make_client, llm_server):
    _, fake = llm_server
    fake.script(["404"])
    with pytest.raises(LLMError, match="does not know model 'test-model'"):
        make_client().chat("x")


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    client = LLMClient("m", base_url="http://127.0.0.1:9/v1", api_key="k", cache_dir=None,
                       max_retries=1, backoff=0.001, timeout=1.0)
    with pytest.raises(LLMError, match="could not be reached"):
        client.chat("x")


def test_chat_many_keeps_order_under_concurrency(make_client, llm_server):
    _, fake = llm_server
    fake.responder = lambda prompt: json.dumps([prompt.upper()])
    prompts = [f"p{i}" for i in range(8)]
    results = make_client(concurrency=4).chat_many(prompts)
    assert [r.text for r in results] == [json.dumps([p.upper()]) for p in prompts]


def test_a_non_json_body_from_a_proxy_is_a_clear_error(make_client, llm_server):
    _, fake = llm_server
    fake.script(["html"])
    with pytest.raises(LLMError, match=r"did not answer with chat-completions JSON .*<html>.*OpenAI-compatible"):
        make_client().chat("x")


@pytest.mark.parametrize("mode", ["empty", "null", "no_choices"])
def test_empty_content_and_no_choices_are_errors_not_cached(make_client, llm_server, mode, tmp_path):
    _, fake = llm_server
    fake.script([mode])
    with pytest.raises(LLMError, match="nothing was cached"):
        make_client().chat("x")
    assert not list((tmp_path / "llm-cache").rglob("*.json"))


def test_a_server_that_never_answers_is_bounded_by_timeout_and_retries(make_client, llm_server):
    _, fake = llm_server
    fake.script(["hang"] * 3)
    client = make_client(cache_dir=None, timeout=0.3, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"timed out after 0.3 s, after 1 retries.*--timeout"):
        client.chat("x")
    assert time.monotonic() - t0 < 3 and len(fake.requests) == 2


def test_the_time_budget_bounds_every_prompt_together(make_client, llm_server):
    _, fake = llm_server
    fake.script(["hang"] * 20)
    client = make_client(cache_dir=None, timeout=30, max_retries=5, time_budget=0.5, concurrency=2)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"time budget of 0.5 s .* is spent.*--time-budget"):
        client.chat_many([f"p{i}" for i in range(6)])
    assert time.monotonic() - t0 < 5
    assert len(fake.requests) <= 2  # the first error cancels the prompts still queued


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds; got 0"):
        LLMClient("m", timeout=0)
    with pytest.raises(ValueError, match="time_budget must be a positive"):
        LLMClient("m", time_budget=-1)
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        LLMClient("m", max_retries=-1)


def test_the_first_failure_stops_the_others_without_waiting_for_them(make_client, llm_server):
    _, fake = llm_server
    fake.script(["hang", "401"])  # the first prompt hangs, the second is refused at once
    client = make_client(cache_dir=None, timeout=20, max_retries=0, concurrency=2)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="rejected the API key"):
        client.chat_many(["a", "b", "c", "d"])
    assert time.monotonic() - t0 < 5  # not held up by the hanging request
    assert len(fake.requests) == 2  # no prompt was sent after the failure
