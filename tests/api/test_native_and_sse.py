"""POST /v1/generate and the exact SSE framing of every streaming route."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import stream_frames


def test_generate_json(server):
    r = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Once upon a time", "max_new_tokens": 16}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["finish_reason"] in ("length", "stop") and body["generated_text"]
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": body["usage"]["completion_tokens"],
        "total_tokens": 4 + body["usage"]["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": 0},  # 4 tokens: under the prefix cache's shortest hit
    }
    assert set(body["timings"]) == {"queue_ms", "time_to_first_token_ms", "total_ms", "tokens_per_second"}
    # the older name of the limit
    r = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Once upon a time", "max_length": 3}, timeout=60)
    assert r.json()["usage"]["completion_tokens"] == 3 and r.json()["finish_reason"] == "length"


def test_generate_stream_framing_and_equality(server):
    body = {"prompt": "Once upon a time", "max_new_tokens": 24, "ignore_eos": True}
    whole = httpx.post(f"{server.url}/v1/generate", json=body, timeout=60).json()
    resp, frames = stream_frames(f"{server.url}/v1/generate", {**body, "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache"
    events = [json.loads(f["data"]) for f in frames if "data" in f]
    assert all("event" not in f for f in frames)
    assert "".join(e["text"] for e in events) == whole["generated_text"]
    final = events[-1]
    assert final["finish_reason"] == "length" and final["generated_text"] == whole["generated_text"]
    assert final["usage"]["completion_tokens"] == 24
    assert all("finish_reason" not in e for e in events[:-1])


def test_openai_stream_ends_with_done(server):
    _resp, frames = stream_frames(
        f"{server.url}/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": True, "temperature": 0},
    )
    datas = [f["data"] for f in frames if "data" in f]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)


def test_utf8_pieces_are_whole_characters(server):
    body = {
        "messages": [{"role": "user", "content": "Reply with three emoji and the word 日本語: 🌊🌙✨"}],
        "max_tokens": 40,
        "temperature": 0,
        "stream": True,
    }
    _, frames = stream_frames(f"{server.url}/v1/chat/completions", body)
    pieces = [
        json.loads(f["data"])["choices"][0]["delta"].get("content", "")
        for f in frames
        if f.get("data", "[DONE]") != "[DONE]"
    ]
    assert all("\ufffd" not in p for p in pieces)
    whole = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "stream": False}, timeout=60).json()
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
