"""Health, readiness, info, tokenizer routes, docs, request ids."""

from __future__ import annotations

import httpx


def test_health_and_ready(server):
    assert httpx.get(f"{server.url}/v1/health").json() == {"status": "ok", "detail": None}
    r = httpx.get(f"{server.url}/v1/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_info_reports_provenance_runtime_and_limits(server):
    info = httpx.get(f"{server.url}/v1/info").json()
    m = info["manifest"]
    # the default folder's quant is whatever `--quant auto` chose on this machine (int8 or gguf so far)
    assert m["graph"] == "gqa" and m["quant"] == m["selection"]["chosen"] and m["source"]["kind"] == "embedded"
    assert len(m["source"]["sha256"]) == 64 and m["validation"]["passed"]
    assert info["runtime"]["onnxruntime_version"].startswith("1.") and info["runtime"]["threads"] == 2
    assert info["limits"]["max_model_len"] == 2048 and info["limits"]["max_running"] >= 1
    assert info["limits"]["kv_budget_mb"] == 128


def test_tokenize_detokenize_round_trip(server):
    r = httpx.post(f"{server.url}/v1/tokenize", json={"prompt": "Hello world"}).json()
    assert r["count"] == len(r["tokens"]) > 0
    back = httpx.post(f"{server.url}/v1/detokenize", json={"tokens": r["tokens"]}).json()
    assert back["prompt"] == "Hello world"
    chat = httpx.post(f"{server.url}/v1/tokenize", json={"messages": [{"role": "user", "content": "Hi"}]}).json()
    text = httpx.post(f"{server.url}/v1/detokenize", json={"tokens": chat["tokens"]}).json()["prompt"]
    assert text.endswith("<|im_start|>assistant\n") and "Hi" in text
    bad = httpx.post(f"{server.url}/v1/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
    assert "tokens" in bad.json()["error"]["message"] and "49152" in bad.json()["error"]["message"]


def test_docs_and_schema(server):
    schema = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/v1/generate", "/v1/completions", "/v1/chat/completions", "/v1/tokenize", "/v1/ready"):
        assert path in schema["paths"], path
    undocumented = [
        f"{name}.{prop}"
        for name, comp in schema["components"]["schemas"].items()
        for prop, spec in comp.get("properties", {}).items()
        # a tagged union's tag is a const that Litestar adds without a description: its value is its meaning
        if not spec.get("description") and "const" not in spec
    ]
    assert undocumented == []
    assert len(schema["components"]["schemas"]["GenerateRequest"]["properties"]) >= 15
    assert "swagger" in httpx.get(f"{server.url}/docs").text.lower()
    assert "redoc" in httpx.get(f"{server.url}/redoc").text.lower()


def test_request_id_is_echoed_or_generated(server):
    r = httpx.get(f"{server.url}/v1/models", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(httpx.get(f"{server.url}/v1/models").headers["x-request-id"]) == 32
