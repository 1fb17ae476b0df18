"""The pages in a real browser: /docs and /redoc from the server's own assets, the chat playground at /."""

from __future__ import annotations

import json
import re
import time

import httpx
import jsonschema
import pytest

from tests.api.browser import PHONE, screenshot

pytestmark = pytest.mark.real
MODEL = "SmolLM2-135M-Instruct"
QUESTION = "What is the capital of Japan?"


def test_swagger_lists_the_operations_and_try_it_out_gets_200(server, open_page, tmp_path):
    page, log = open_page(f"{server.url}/docs")
    chat = page.locator(".opblock-post", has=page.locator("[data-path='/v1/chat/completions']"))
    chat.wait_for()
    assert page.locator(".opblock").count() >= 10  # every route of the schema, not just one
    chat.locator(".opblock-summary").click()
    chat.get_by_role("button", name="Try it out").click()
    chat.locator("textarea.body-param__text").fill('{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}')
    chat.get_by_role("button", name="Execute").click()
    status = chat.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert '"chat.completion"' in chat.locator(".live-responses-table tbody .microlight").first.inner_text()
    page.locator(".opblock-summary").first.scroll_into_view_if_needed()
    screenshot(page, "docs", tmp_path)
    assert log.other_hosts(server.url) == []
    assert server.metrics()['llm_requests_total{route="/assets/swagger-ui/{file_path}",status="200"}'] >= 1


def test_redoc_renders_from_local_assets(server, open_page, tmp_path):
    page, log = open_page(f"{server.url}/redoc")
    page.get_by_role("heading", name=re.compile(r"^llm-gateway")).wait_for()
    page.get_by_text("/v1/chat/completions").first.wait_for(state="attached")
    assert page.locator("[data-section-id^='tag/']").count() >= 3  # system, openai, tokenizer, native
    page.wait_for_load_state("networkidle")
    screenshot(page, "redoc", tmp_path)
    assert log.other_hosts(server.url) == []


def _ask(page, prompt: str, temperature: str, max_tokens: str) -> None:
    page.fill("#temperature", temperature)
    page.fill("#max-tokens", max_tokens)
    page.fill("#prompt", prompt)
    page.click("#send")


def _reply_text(page) -> str:
    # the reply's own text, without the stats line appended under it
    return page.locator("#messages li.assistant").last.evaluate("li => li.firstChild ? li.firstChild.textContent : ''")


def test_playground_streams_a_reply_with_its_timings(server, open_page, tmp_path):
    page, log = open_page(f"{server.url}/")
    page.locator("#model option", has_text=MODEL).wait_for(state="attached")
    page.evaluate(
        "() => { window.updates = 0; new MutationObserver(() => window.updates++)"
        ".observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true}); }"
    )
    _ask(page, QUESTION, "0", "48")
    stats = page.locator("#messages li.assistant .stats")
    stats.wait_for()
    assert re.fullmatch(r"TTFT \d+ ms · \d+ tokens · [\d.]+ tok/s · finish: (stop|length)", stats.inner_text())
    assert page.evaluate("window.updates") > 3  # the text grew chunk by chunk, not all at once
    whole = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "temperature": 0, "max_tokens": 48},
        timeout=120,
    ).json()
    assert _reply_text(page) == whole["choices"][0]["message"]["content"]
    screenshot(page, "playground", tmp_path)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    assert log.other_hosts(server.url) == []


def test_playground_json_schema_box_gets_json_that_validates(server, open_page):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    page, log = open_page(f"{server.url}/")
    page.locator("#model option", has_text=MODEL).wait_for(state="attached")
    page.fill("#schema", json.dumps(schema))
    _ask(page, QUESTION, "0", "60")
    stats = page.locator("#messages li.assistant .stats")
    stats.wait_for()
    assert stats.inner_text().endswith("finish: stop")
    jsonschema.validate(json.loads(_reply_text(page)), schema)
    assert log.other_hosts(server.url) == []


def test_playground_stop_aborts_and_frees_the_slot(server, open_page):
    page, log = open_page(f"{server.url}/")
    page.locator("#model option", has_text=MODEL).wait_for(state="attached")
    _ask(page, "Write a very long story about a dragon who learns to fly.", "0.8", "1500")
    page.wait_for_function("() => document.querySelector('#messages li.assistant').textContent.length > 0")
    page.click("#stop")
    stats = page.locator("#messages li.assistant .stats")
    stats.wait_for()
    assert stats.inner_text().endswith("stopped")
    assert int(re.search(r"(\d+) tokens", stats.inner_text()).group(1)) < 1500
    deadline = time.monotonic() + 60
    while server.metrics()["llm_requests_running"] != 0:
        assert time.monotonic() < deadline, "the aborted request still holds its slot"
        time.sleep(0.2)
    finished = [e for e in server.log_lines() if e.get("event") == "request.finished" and e.get("finish_reason")]
    assert finished[-1]["path"] == "/v1/chat/completions"
    assert finished[-1]["finish_reason"] == "abort"
    assert finished[-1]["completion_tokens"] < 1500
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    assert log.other_hosts(server.url) == []


def test_playground_with_api_keys_asks_for_one(make_server, open_page):
    srv = make_server(env={"LLM_GATEWAY_API_KEYS": "sesame"})
    for public in ("/", "/docs", "/redoc", "/assets/swagger-ui/swagger-ui.css", "/assets/redoc/redoc.standalone.js"):
        assert httpx.get(f"{srv.url}{public}").status_code == 200, public
    for private in ("/openapi.json", "/v1/models"):
        assert httpx.get(f"{srv.url}{private}").status_code == 401, private
    page, log = open_page(f"{srv.url}/")
    status = page.locator("#status")
    status.wait_for()
    assert status.inner_text().startswith("401: ")
    assert "API key" in status.inner_text()
    page.fill("#api-key", "sesame")
    page.dispatch_event("#api-key", "change")
    page.locator("#model option", has_text=MODEL).wait_for(state="attached")
    assert page.evaluate("sessionStorage.getItem('llm-gateway.api-key')") == "sesame"
    _ask(page, QUESTION, "0", "8")
    page.locator("#messages li.assistant .stats").wait_for()
    assert status.inner_text() == ""
    assert log.other_hosts(srv.url) == []
