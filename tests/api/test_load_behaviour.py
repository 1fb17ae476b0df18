"""Behaviour under real use: disconnects, queue limits, timeouts, keep-alives, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx

from tests.api.conftest import sse_frames

LONG = {"prompt": "Tell me a long story.", "max_new_tokens": 1500, "ignore_eos": True}


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_disconnect_mid_stream_cancels_the_generation(server):
    before = server.metrics()
    with httpx.stream("POST", f"{server.url}/v1/generate", json={**LONG, "stream": True}, timeout=60) as resp:
        lines = resp.iter_lines()
        got = 0
        for line in lines:
            if line.startswith("data:"):
                got += 1
            if got == 5:
                break
        assert server.metrics()["llm_requests_running"] == 1
    # the connection is closed here, long before 1500 tokens
    assert wait_for(lambda: server.metrics()["llm_requests_running"] == 0, timeout=10)
    after = server.metrics()
    assert (
        after['llm_sequences_finished_total{finish_reason="abort"}']
        == before['llm_sequences_finished_total{finish_reason="abort"}'] + 1
    )
    assert after["llm_completion_tokens_total"] - before["llm_completion_tokens_total"] < 1000
    assert httpx.post(f"{server.url}/v1/generate", json={"prompt": "ok", "max_new_tokens": 2}).status_code == 200


def test_burst_over_a_small_queue_gives_only_200_and_429(make_server):
    srv = make_server({"LLM_GATEWAY_MAX_RUNNING": "2", "LLM_GATEWAY_MAX_WAITING": "2"})

    async def burst():
        async with httpx.AsyncClient(timeout=120) as client:
            body = {"prompt": "Hello", "max_new_tokens": 24, "ignore_eos": True}
            return await asyncio.gather(*[client.post(f"{srv.url}/v1/generate", json=body) for _ in range(16)])

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 429} and codes.count(200) >= 4, codes
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1" and limited.json()["error"]["type"] == "rate_limit_error"
    assert httpx.get(f"{srv.url}/v1/ready").status_code == 200
    assert httpx.post(f"{srv.url}/v1/generate", json={"prompt": "again", "max_new_tokens": 2}).status_code == 200
    metrics = srv.metrics()
    assert metrics['llm_requests_total{route="/v1/generate",status="429"}'] == codes.count(429)
    assert metrics["llm_requests_running"] == 0 and metrics["llm_requests_waiting"] == 0


def test_request_timeout_ends_with_a_clear_finish_reason(make_server):
    srv = make_server({"LLM_GATEWAY_REQUEST_TIMEOUT": "0.5"})
    r = httpx.post(f"{srv.url}/v1/generate", json=LONG, timeout=60)
    assert r.status_code == 200 and r.json()["finish_reason"] == "timeout"
    assert 0 < r.json()["usage"]["completion_tokens"] < 1500


def test_keepalive_comments_while_waiting_in_the_queue(make_server):
    srv = make_server({"LLM_GATEWAY_MAX_RUNNING": "1", "LLM_GATEWAY_SSE_KEEPALIVE": "0.2"})
    blocker = threading.Thread(
        target=lambda: httpx.post(f"{srv.url}/v1/generate", json={**LONG, "max_new_tokens": 200}, timeout=120)
    )
    blocker.start()
    assert wait_for(lambda: srv.metrics()["llm_requests_running"] == 1)
    with httpx.stream(
        "POST",
        f"{srv.url}/v1/chat/completions",
        timeout=120,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True},
    ) as resp:
        frames = sse_frames(resp.iter_lines())
    blocker.join()
    comments = [f for f in frames if "comment" in f]
    first_data = next(
        i
        for i, f in enumerate(frames)
        if f.get("data", "").startswith("{") and json.loads(f["data"])["choices"][0]["delta"].get("content")
    )
    assert comments and frames.index(comments[0]) < first_data
    assert frames[-1]["data"] == "[DONE]"


def test_sigterm_drains_in_flight_requests_then_exits(make_server):
    srv = make_server({"LLM_GATEWAY_SHUTDOWN_GRACE": "30"})
    result = {}

    def stream():
        with httpx.stream(
            "POST",
            f"{srv.url}/v1/generate",
            timeout=120,
            json={"prompt": "Story:", "max_new_tokens": 300, "ignore_eos": True, "stream": True},
        ) as r:
            frames = sse_frames(r.iter_lines())
        result["final"] = json.loads(frames[-1]["data"])

    worker = threading.Thread(target=stream)
    worker.start()
    assert wait_for(lambda: srv.metrics()["llm_requests_running"] == 1)
    srv.proc.send_signal(signal.SIGTERM)
    assert wait_for(lambda: _refused(srv), timeout=10), "new requests still admitted after SIGTERM"
    worker.join(timeout=120)
    assert result["final"]["finish_reason"] == "length" and result["final"]["usage"]["completion_tokens"] == 300
    assert srv.proc.wait(timeout=60) == 0
    events = [line["event"] for line in srv.log_lines()]
    assert "server.draining" in events


def _refused(srv) -> bool:
    try:
        r = httpx.post(f"{srv.url}/v1/generate", json={"prompt": "late", "max_new_tokens": 1}, timeout=2)
    except httpx.HTTPError:
        return True  # the listener is closed
    return r.status_code == 503
