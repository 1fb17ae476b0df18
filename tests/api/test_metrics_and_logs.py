"""Prometheus metrics move as requests are served; one JSON log line per request."""

from __future__ import annotations

import httpx


def test_metrics_move_with_traffic(server):
    before = server.metrics()
    r = httpx.post(
        f"{server.url}/v1/generate", json={"prompt": "Count:", "max_new_tokens": 8, "ignore_eos": True}, timeout=60
    )
    assert r.status_code == 200
    after = server.metrics()
    key = 'llm_requests_total{route="/v1/generate",status="200"}'
    assert after[key] == before.get(key, 0) + 1
    assert after["llm_completion_tokens_total"] - before["llm_completion_tokens_total"] == 8
    assert after["llm_prompt_tokens_total"] > before["llm_prompt_tokens_total"]
    assert after["llm_time_to_first_token_seconds_count"] == before["llm_time_to_first_token_seconds_count"] + 1
    assert after["llm_inter_token_latency_seconds_count"] == before["llm_inter_token_latency_seconds_count"] + 7
    assert after["llm_queue_wait_seconds_count"] == before["llm_queue_wait_seconds_count"] + 1
    assert (
        after['llm_engine_step_duration_seconds_count{kind="decode"}']
        >= before['llm_engine_step_duration_seconds_count{kind="decode"}'] + 7
    )
    assert after["llm_batch_size_count"] > before["llm_batch_size_count"]
    assert (
        after['llm_request_duration_seconds_count{route="/v1/generate"}']
        == before.get('llm_request_duration_seconds_count{route="/v1/generate"}', 0) + 1
    )
    assert after['llm_sequences_finished_total{finish_reason="length"}'] >= 1
    assert after["llm_requests_running"] == 0 and after["llm_requests_waiting"] == 0 and after["llm_ready"] == 1
    info = [k for k in after if k.startswith("llm_model_info{")]
    quant = httpx.get(f"{server.url}/v1/info").json()["manifest"]["quant"]  # auto's choice on this machine
    assert len(info) == 1 and 'graph="gqa"' in info[0] and f'quant="{quant}"' in info[0]
    assert 'onnxruntime_version="1.' in info[0]


def test_one_log_line_per_request_without_the_prompt(server):
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"X-Request-Id": "log-check-1"},
        timeout=60,
        json={"messages": [{"role": "user", "content": "a secret prompt"}], "max_tokens": 3},
    )
    assert r.status_code == 200
    lines = server.wait_log(lambda line: line.get("request_id") == "log-check-1")
    finished = [line for line in lines if line["event"] == "request.finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200
    assert line["completion_tokens"] == 3 and line["prompt_tokens"] > 0
    assert line["ttft_ms"] > 0 and line["duration_ms"] >= line["ttft_ms"] and line["finish_reason"] == "length"
    assert "timestamp" in line and line["level"] == "info"
    assert "secret" not in server.log_path.read_text()


def test_prompts_are_logged_only_when_asked(make_server):
    srv = make_server({"LLM_GATEWAY_LOG_PROMPTS": "true"})
    httpx.post(
        f"{srv.url}/v1/generate",
        json={"prompt": "remember this", "max_new_tokens": 1},
        headers={"X-Request-Id": "p1"},
        timeout=60,
    )
    [line] = srv.wait_log(lambda x: x.get("request_id") == "p1" and x["event"] == "request.finished")
    assert line["prompt"] == "remember this"
