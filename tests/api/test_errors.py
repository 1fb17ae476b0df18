"""Every error case: OpenAI error shape, the right status, the field named, the server still healthy."""

from __future__ import annotations

import shutil

import httpx
import pytest

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def error_of(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "temperature": -1}, "temperature"),
        ("/v1/chat/completions", {**CHAT, "n": 0}, "n"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {**CHAT, "stop": ["x"] * 17}, "stop"),
        ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function"}]}, "tools[0]"),  # no function
        (
            "/v1/chat/completions",
            {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "prompt"),
        ("/v1/completions", {"prompt": [1, 2, 10**9]}, "prompt"),
        ("/v1/completions", {"prompt": "x", "echo": True}, "echo"),
        ("/v1/generate", {"prompt": "x", "top_k": -1}, "top_k"),
        ("/v1/generate", {"prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
        ("/v1/generate", {"max_new_tokens": 3}, "prompt"),
        ("/v1/generate", {"prompt": "x", "stop_token_ids": [10**7]}, "stop_token_ids"),
    ],
)
def test_invalid_parameters_name_the_field(server, route, body, param):
    err = error_of(httpx.post(f"{server.url}{route}", json=body, timeout=30), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert param.split("[")[0] in err["message"]


def test_invalid_json_and_wrong_types(server):
    err = error_of(
        httpx.post(f"{server.url}/v1/generate", content=b"{nope", headers={"content-type": "application/json"}), 400
    )
    assert "JSON" in err["message"]
    err = error_of(httpx.post(f"{server.url}/v1/generate", json={"prompt": 5}), 400)
    assert err["param"] == "prompt"


def test_prompt_that_does_not_fit(server):
    err = error_of(
        httpx.post(f"{server.url}/v1/generate", json={"prompt": "word " * 3000, "max_new_tokens": 4}, timeout=30), 400
    )
    assert err["code"] == "context_length_exceeded" and "2048" in err["message"]


def test_unknown_model_and_route(server):
    err = error_of(httpx.post(f"{server.url}/v1/chat/completions", json={**CHAT, "model": "gpt-4"}), 404)
    assert err["param"] == "model"
    error_of(httpx.get(f"{server.url}/v1/nope"), 404)
    error_of(httpx.get(f"{server.url}/v1/generate"), 405)


def test_body_over_the_limit_is_413(make_server):
    srv = make_server({"LLM_GATEWAY_MAX_BODY_BYTES": "4096"})
    err = error_of(httpx.post(f"{srv.url}/v1/generate", json={"prompt": "x" * 10_000}), 413)
    assert "larger" in err["message"]
    assert httpx.post(f"{srv.url}/v1/generate", json={"prompt": "ok", "max_new_tokens": 2}).status_code == 200


def test_api_keys_guard_every_route_but_health_and_ready(make_server, tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("from-file-key\n")
    srv = make_server(
        {
            "LLM_GATEWAY_API_KEYS": "k1,k2",
            "LLM_GATEWAY_API_KEY_FILE": str(keyfile),
            "LLM_GATEWAY_METRICS_PUBLIC": "false",
        }
    )
    for path in ("/v1/models", "/v1/info", "/metrics", "/openapi.json"):
        err = error_of(httpx.get(f"{srv.url}{path}"), 401)
        assert err["type"] == "authentication_error"
    assert httpx.get(f"{srv.url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{srv.url}/v1/models", headers={"Authorization": "Basic k1"}).status_code == 401
    assert httpx.get(f"{srv.url}/v1/models", headers={"Authorization": "Bearer K1"}).status_code == 401  # case matters
    for key in ("k1", "k2", "from-file-key"):
        assert httpx.get(f"{srv.url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.get(f"{srv.url}/v1/health").status_code == 200
    assert httpx.get(f"{srv.url}/v1/ready").status_code == 200
    r = httpx.post(f"{srv.url}/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer k2"}, timeout=60)
    assert r.status_code == 200


def test_metrics_can_stay_public_with_keys_and_cors_is_opt_in(make_server, server):
    srv = make_server({"LLM_GATEWAY_API_KEYS": "k1", "LLM_GATEWAY_CORS_ORIGINS": "https://app.example"})
    assert httpx.get(f"{srv.url}/metrics").status_code == 200
    pre = httpx.options(
        f"{srv.url}/v1/chat/completions",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert pre.headers.get("access-control-allow-origin") == "https://app.example"
    plain = httpx.options(
        f"{server.url}/v1/chat/completions",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in plain.headers  # CORS off by default


def test_not_ready_is_503_and_liveness_stays_up(make_server, real_models, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(real_models.default, broken)
    onnx_file = next(broken.glob("*.onnx"))
    onnx_file.write_bytes(b"this is not an onnx model")
    srv = make_server(model=broken, ready=False)
    srv.wait_ready(expect=503)
    assert httpx.get(f"{srv.url}/v1/health").status_code == 200
    body = httpx.get(f"{srv.url}/v1/ready").json()
    assert body["status"] == "failed" and body["detail"]
    err = error_of(httpx.post(f"{srv.url}/v1/generate", json={"prompt": "x"}), 503)
    assert err["type"] == "service_unavailable_error"


def test_serve_refuses_a_folder_that_is_not_an_export(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("serve", "--model", str(tmp_path))
    assert proc.returncode == 2 and "manifest.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("serve", "--model", str(tmp_path), env={"LLM_GATEWAY_MAX_RUNNING": "lots"})
    assert proc.returncode == 2 and "LLM_GATEWAY_MAX_RUNNING" in proc.stderr
