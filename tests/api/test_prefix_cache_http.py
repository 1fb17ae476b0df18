"""The prefix cache through HTTP with the official `openai` client: cached_tokens in usage (plain, streamed,
completions, n > 1, the Responses API), cache_salt, the Prometheus counters and gauges, and the request log line."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _chat(tag: str) -> list[dict]:
    # a system prompt no other test sends: only the chat template's opening can be cached before
    return [
        {
            "role": "system",
            "content": f"Session {tag}. You are a terse assistant who answers in one line, without any greeting.",
        },
        {"role": "user", "content": "Name a primary colour."},
    ]


def test_second_identical_chat_reuses_all_but_the_last_prompt_token(client, server):
    messages = _chat(uuid.uuid4().hex)
    kwargs = dict(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    before = server.metrics()
    cold = client.chat.completions.create(**kwargs)
    warm = client.chat.completions.create(**kwargs)
    after = server.metrics()
    prompt = cold.usage.prompt_tokens
    assert prompt > 40
    assert cold.usage.prompt_tokens_details.cached_tokens == 0  # the template's opening alone is too short to reuse
    assert warm.usage.prompt_tokens_details.cached_tokens == prompt - 1
    queries = after["llm_prefix_cache_queries_tokens_total"] - before["llm_prefix_cache_queries_tokens_total"]
    hits = after["llm_prefix_cache_hits_tokens_total"] - before["llm_prefix_cache_hits_tokens_total"]
    assert queries == 2 * prompt
    assert hits == prompt - 1
    assert after["llm_prefix_cache_tokens"] >= prompt
    assert 0 <= after["llm_kv_cache_usage_ratio"] <= 1
    logged = server.wait_log(lambda line: line.get("cached_tokens") == prompt - 1)
    assert logged and logged[-1]["prompt_tokens"] == prompt


def test_streamed_usage_chunk_and_completions_report_cached_tokens(client):
    messages = _chat(uuid.uuid4().hex)
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=4,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens - 1
    prompt = f"Shopping list {uuid.uuid4().hex}: apples, pears, flour, eggs, butter, milk, salt, onions, garlic,"
    client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, temperature=0)
    again = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, temperature=0)
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


def test_n_choices_share_one_prefill_and_salt_isolates(client, server):
    messages = _chat(uuid.uuid4().hex)
    kwargs = dict(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    before = server.metrics()
    r = client.chat.completions.create(n=3, **kwargs)
    after = server.metrics()
    prompt = r.usage.prompt_tokens
    assert len(r.choices) == 3  # (identical to the choice alone on fp32: tests/engine/test_prefix_cache.py)
    hits = after["llm_prefix_cache_hits_tokens_total"] - before["llm_prefix_cache_hits_tokens_total"]
    assert hits >= 2 * (prompt - 1)  # choices 2 and 3 started from choice 1's KV
    salted = client.chat.completions.create(extra_body={"cache_salt": "tenant-a"}, **kwargs)
    assert salted.usage.prompt_tokens_details.cached_tokens == 0
    again = client.chat.completions.create(extra_body={"cache_salt": "tenant-a"}, **kwargs)
    assert again.usage.prompt_tokens_details.cached_tokens == prompt - 1


def test_native_route_reports_cached_tokens(server):
    body = {"prompt": f"Note {uuid.uuid4().hex}: the sky is blue because air scatters short waves", "max_new_tokens": 4}
    httpx.post(f"{server.url}/v1/generate", json=body, timeout=60)
    r = httpx.post(f"{server.url}/v1/generate", json=body, timeout=60).json()
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] == r["usage"]["prompt_tokens"] - 1


def test_responses_report_cached_input_tokens_and_take_cache_salt(client):
    kwargs = dict(model=MODEL, instructions=_chat(uuid.uuid4().hex)[0]["content"], max_output_tokens=4, temperature=0)
    cold = client.responses.create(input="Name a primary colour.", **kwargs)
    salted = client.responses.create(input="Name a primary colour.", extra_body={"cache_salt": "tenant-r"}, **kwargs)
    warm = client.responses.create(input="Name a primary colour.", **kwargs)
    prompt = cold.usage.input_tokens
    assert cold.usage.input_tokens_details.cached_tokens == 0
    assert salted.usage.input_tokens_details.cached_tokens == 0
    assert warm.usage.input_tokens_details.cached_tokens == prompt - 1
