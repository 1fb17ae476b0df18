"""The corners a peer's test suite finds: unknown routes and methods, bodies the framework rejects, CORS on
refusals, the metrics content type. Every answer in the OpenAI error shape, on a real socket."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_errors import CHAT, error_of


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("DELETE", "/nope"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/chat/nope"),
        ("GET", "/v1/models/a/b"),
        ("PUT", "/a/b/c/d"),
    ],
)
def test_unknown_routes_are_a_json_404(server, method, path):
    resp = httpx.request(method, f"{server.url}{path}", json={})
    err = error_of(resp, 404)
    assert resp.headers["content-type"] == "application/json"
    assert err["type"] == "not_found_error" and path in err["message"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/generate"), ("POST", "/v1/models"), ("PUT", "/docs")])
def test_a_wrong_method_is_a_json_405(server, method, path):
    resp = httpx.request(method, f"{server.url}{path}")
    err = error_of(resp, 405)
    assert resp.headers["content-type"] == "application/json" and method in err["message"]
    assert resp.headers["x-request-id"]  # refused by the router, still traceable


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": 5, "content": "Hi"}]}, "messages[0].role"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": "many"}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "seed": 2**63}, "seed"),
        ("/v1/generate", {"prompt": "x", "stream": "yes"}, "stream"),
    ],
)
def test_bodies_the_framework_rejects_name_the_field(server, route, body, param):
    err = error_of(httpx.post(f"{server.url}{route}", json=body), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_a_body_that_is_not_an_object(server):
    err = error_of(httpx.post(f"{server.url}/v1/generate", json=["x"]), 400)
    assert "object" in err["message"]


def test_the_largest_seed_serves_several_choices(server):
    body = {"prompt": "Hi", "seed": 2**63 - 1, "n": 2, "max_tokens": 2, "temperature": 1.0}
    r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 2


def test_metrics_content_type_names_its_charset_once(server):
    content_type = httpx.get(f"{server.url}/metrics").headers["content-type"]
    assert content_type.startswith("text/plain") and content_type.count("charset=") == 1


def test_unknown_routes_are_counted_as_other(server):
    """At any depth, below a known prefix or not, and whether the router or a catch-all handler refuses it:
    a request id, echoed back, one access log line and the counter under "other"."""
    before = server.metrics().get('llm_requests_total{route="other",status="404"}', 0)
    paths = ["/nope-for-metrics", "/v1/deep/nope-for-metrics", "/a/b/c/nope-for-metrics", "/v1/models/x/y"]
    answers = [httpx.request(method, f"{server.url}{path}") for path in paths for method in ("GET", "POST")]
    assert all(resp.status_code == 404 for resp in answers)
    ids = {resp.headers["x-request-id"] for resp in answers}
    assert len(ids) == len(answers)
    for request_id in ids:
        (line,) = server.wait_log(lambda e, i=request_id: e.get("request_id") == i and e["event"] == "request.finished")
        assert line["route"] == "other" and line["status"] == 404
    # counted before the log line is written
    assert server.metrics()['llm_requests_total{route="other",status="404"}'] == before + len(answers)


def test_a_request_id_sent_on_an_unknown_path_is_echoed(server):
    resp = httpx.get(f"{server.url}/v1/deep/nope", headers={"X-Request-Id": "trace-42"})
    assert resp.status_code == 404 and resp.headers["x-request-id"] == "trace-42"


def test_refusals_carry_cors_headers(make_server):
    origin = "https://app.example"
    srv = make_server({"LLM_GATEWAY_API_KEYS": "k1", "LLM_GATEWAY_CORS_ORIGINS": origin})
    refused = httpx.get(f"{srv.url}/v1/models", headers={"Origin": origin})
    err = error_of(refused, 401)
    assert err["type"] == "authentication_error" and refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["access-control-allow-origin"] == origin
    missing = httpx.get(f"{srv.url}/v1/nope", headers={"Origin": origin, "Authorization": "Bearer k1"})
    error_of(missing, 404)
    assert missing.headers["access-control-allow-origin"] == origin
    bad = httpx.post(
        f"{srv.url}/v1/generate", json={"prompt": 5}, headers={"Origin": origin, "Authorization": "Bearer k1"}
    )
    assert error_of(bad, 400)["param"] == "prompt" and bad.headers["access-control-allow-origin"] == origin
    ok = httpx.get(f"{srv.url}/v1/models", headers={"Origin": origin, "Authorization": "Bearer k1"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == origin
    for method, path in [("GET", "/nope"), ("POST", "/nope"), ("GET", "/v1/nope")]:
        unknown = httpx.request(method, f"{srv.url}{path}", headers={"Origin": origin})
        assert error_of(unknown, 404)["type"] == "not_found_error", (method, path)  # with or without a key
