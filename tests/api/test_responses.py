"""The Responses API through the official `openai` client, on a real server and the real model."""

from __future__ import annotations

import json
import time

import httpx
import jsonschema
import openai
import pytest

from tests.api.cold import cold
from tests.api.test_engine_failure import fail_decode_after, inprocess  # noqa: F401 (a fixture)

MODEL = "SmolLM2-135M-Instruct"
QUESTION = "What is the capital of France?"
GREEDY = {"model": MODEL, "temperature": 0}


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def client(server):
    return _client(server.url)


def _chat(client, messages, max_tokens):
    r = client.chat.completions.create(messages=messages, max_tokens=max_tokens, extra_body=cold(), **GREEDY)
    return r.choices[0].message.content


def test_create_runs_the_chat_path_and_reports_usage(client):
    r = client.responses.create(input=QUESTION, max_output_tokens=24, extra_body=cold(), **GREEDY)
    assert r.id.startswith("resp_") and r.object == "response" and r.model == MODEL
    [message] = r.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert r.output_text == _chat(client, [{"role": "user", "content": QUESTION}], 24)
    u = r.usage
    assert u.input_tokens > 10 and 1 <= u.output_tokens <= 24 and u.total_tokens == u.input_tokens + u.output_tokens
    assert u.input_tokens_details.cached_tokens == 0 and u.output_tokens_details.reasoning_tokens == 0
    if r.status == "completed":
        assert r.incomplete_details is None and message.status == "completed" and r.completed_at >= r.created_at
    else:
        assert r.status == "incomplete" and u.output_tokens == 24


def test_a_length_stop_is_incomplete(client):
    r = client.responses.create(input=QUESTION, max_output_tokens=3, extra_body={"ignore_eos": True}, **GREEDY)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output[0].status == "incomplete" and r.usage.output_tokens == 3 and r.max_output_tokens == 3


def test_message_items_and_instructions_reach_the_template(client, server):
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
    ]
    r = client.responses.create(
        input=items, instructions="Be brief.", max_output_tokens=12, extra_body=cold(), **GREEDY
    )
    expected = [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": QUESTION},
    ]
    assert r.output_text == _chat(client, expected, 12) and r.instructions == "Be brief."
    tokens = httpx.post(f"{server.url}/v1/tokenize", json={"messages": expected}, timeout=30).json()["count"]
    assert r.usage.input_tokens == tokens
    listed = client.responses.input_items.list(r.id)  # newest first by default, as in OpenAI's API
    assert [(i.role, i.content[0].text) for i in listed.data] == [
        ("user", QUESTION),
        ("developer", "Answer in French."),
    ]
    paged = client.responses.input_items.list(r.id, order="asc", limit=1)  # the client follows `after`
    assert [i.role for i in paged] == ["developer", "user"] and paged.has_more
    assert all(i.id.startswith("msg_") and i.type == "message" for i in listed.data)


def test_stream_events_as_the_client_parses_them(client):
    kwargs = dict(input=QUESTION, max_output_tokens=8, extra_body={"ignore_eos": True}, **GREEDY)
    events = list(client.responses.create(stream=True, **kwargs))
    kinds = [e.type for e in events]
    deltas = kinds[4:-4]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert deltas and set(deltas) == {"response.output_text.delta"}
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == events[-4].text == events[-3].part.text == final.output_text
    assert final.usage.output_tokens == 8 and final.incomplete_details.reason == "max_output_tokens"
    assert {e.item_id for e in events if hasattr(e, "item_id")} == {final.output[0].id}
    assert text == client.responses.create(**kwargs).output_text

    # the client's accumulating helper; its get_final_response() needs response.completed, so stop on a
    # stop string (after a length stop, OpenAI's API and this server send response.incomplete instead)
    stopped = dict(input=QUESTION, max_output_tokens=16, extra_body={"stop": [" "]}, **GREEDY)
    with client.responses.stream(**stopped) as helper:
        streamed = "".join(e.delta for e in helper if e.type == "response.output_text.delta")
        done = helper.get_final_response()
    assert done.status == "completed" and done.output_text == streamed and done.incomplete_details is None
    assert done.output[0].status == "completed" and 1 <= done.usage.output_tokens < 16
    assert client.responses.retrieve(final.id).output_text == text


def test_previous_response_id_chains_the_conversation(client):
    first = client.responses.create(input=QUESTION, instructions="Be brief.", max_output_tokens=10, **GREEDY)
    follow_up = "And of Germany?"
    second = client.responses.create(
        input=follow_up, previous_response_id=first.id, max_output_tokens=10, extra_body=cold(), **GREEDY
    )
    assert second.previous_response_id == first.id and second.instructions is None
    history = [  # the first response's instructions are not carried over, as in OpenAI's API
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": follow_up},
    ]
    assert second.output_text == _chat(client, history, 10)
    assert second.usage.input_tokens > first.usage.output_tokens + 10


def test_retrieve_delete_and_store_false(client):
    r = client.responses.create(input="Hi", max_output_tokens=2, metadata={"k": "v"}, **GREEDY)
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.metadata == {"k": "v"}
    assert got.usage.total_tokens == r.usage.total_tokens
    assert client.responses.delete(r.id) is None
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.retrieve(r.id)
    assert exc.value.body["param"] == "response_id" and exc.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    unstored = client.responses.create(input="Hi", max_output_tokens=2, store=False, **GREEDY)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "function_call_output", "output": "4"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c1", "name": "f"}]}, "input[0].arguments"),
        ({"input": [{"type": "input_image", "image_url": "https://x/y.png"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0]"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": []}, "input"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "schema": {"type": 5}}}}, "text.format.schema"),
        ({"input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "Hi", "tool_choice": "required"}, "tool_choice"),
        (
            {
                "input": "Hi",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "function", "name": "g"},
            },
            "tool_choice",
        ),
        (
            {
                "input": "Hi",
                "tools": [{"type": "function", "name": "f"}],
                "text": {"format": {"type": "json_object"}},
            },
            "text.format",
        ),
        ({"input": "Hi", "background": True}, "background"),
        ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "Hi " * 3000}, "input"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(server, body, param):
    r = httpx.post(f"{server.url}/v1/responses", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_stored_response_routes_are_labelled_by_their_template(client, server):
    r = client.responses.create(input="Hi", max_output_tokens=1, **GREEDY)
    before = server.metrics()
    client.responses.retrieve(r.id, extra_headers={"X-Request-Id": "resp-label-1"})
    client.responses.input_items.list(r.id)
    after = server.metrics()
    for route in ("/v1/responses/{response_id}", "/v1/responses/{response_id}/input_items"):
        key = f'llm_requests_total{{route="{route}",status="200"}}'
        assert after[key] == before.get(key, 0) + 1, route
    [line] = server.wait_log(lambda x: x.get("request_id") == "resp-label-1")
    assert line["route"] == "/v1/responses/{response_id}" and line["path"] == f"/v1/responses/{r.id}"


def test_unknown_previous_response_id_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.create(input="Hi", previous_response_id="resp_unknown", max_output_tokens=2)
    assert exc.value.body["param"] == "previous_response_id"


def test_keys_see_only_their_responses_and_the_store_is_bounded(make_server):
    ttl = 8.0
    srv = make_server(
        {
            "LLM_GATEWAY_API_KEYS": "k1,k2",
            "LLM_GATEWAY_RESPONSES_MAX_STORED": "2",
            "LLM_GATEWAY_RESPONSES_TTL": str(ttl),
        }
    )
    one, two = _client(srv.url, "k1"), _client(srv.url, "k2")
    mine = one.responses.create(input="Hi", max_output_tokens=1, **GREEDY)
    for call in (
        lambda: two.responses.retrieve(mine.id),
        lambda: two.responses.delete(mine.id),
        lambda: two.responses.create(input="Hi", previous_response_id=mine.id, max_output_tokens=1),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert one.responses.retrieve(mine.id).id == mine.id  # still there: k2 could not delete it

    a, b = (one.responses.create(input=text, max_output_tokens=1, **GREEDY) for text in ("A", "B"))
    with pytest.raises(openai.NotFoundError):  # the oldest went when a third was stored
        one.responses.retrieve(mine.id)
    assert one.responses.retrieve(a.id).id == a.id and one.responses.retrieve(b.id).id == b.id
    time.sleep(ttl + 0.5)
    with pytest.raises(openai.NotFoundError):  # and every one goes when it is older than the TTL
        one.responses.retrieve(b.id)


def test_a_failing_stream_ends_with_error_and_response_failed(inprocess):  # noqa: F811
    url, gateway = inprocess
    fail_decode_after(gateway, steps=3)
    stream = _client(url).responses.create(
        input="Tell me a story", max_output_tokens=40, stream=True, extra_body={"ignore_eos": True}
    )
    events = list(stream)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert "simulated" in events[-2].message and events[-2].code == "server_error"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error" and "simulated" in failed.error.message
    assert any(e.type == "response.output_text.delta" for e in events)
    assert _client(url).responses.retrieve(failed.id).status == "failed"


# -- structured outputs and function tools (issue 13) ------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}
WEATHER_QUESTION = "What is the weather in Paris?"
FORCED = {"type": "function", "name": "get_weather"}


def test_text_format_json_schema_and_json_object_constrain_the_output(client):
    fmt = {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}
    r = client.responses.create(input="Describe a person.", text={"format": fmt}, max_output_tokens=40, **GREEDY)
    assert r.status == "completed", r.incomplete_details
    jsonschema.validate(json.loads(r.output_text), PERSON)
    assert r.text.format.type == "json_schema" and r.text.format.name == "person"
    obj = client.responses.create(
        input="Describe a cat in JSON.", text={"format": {"type": "json_object"}}, max_output_tokens=40, **GREEDY
    )
    if obj.status == "completed":
        assert isinstance(json.loads(obj.output_text), dict)
    else:  # cut by max_output_tokens: still the start of an object
        assert obj.output_text.startswith("{")


def test_a_forced_tool_call_is_a_function_call_item(client):
    r = client.responses.create(
        input=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=60, **GREEDY
    )
    assert r.status == "completed" and [item.type for item in r.output] == ["function_call"]
    call = r.output[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), WEATHER_TOOL["parameters"])
    assert r.tool_choice.name == "get_weather" and r.tools[0].name == "get_weather"


def test_a_function_call_output_round_trip_and_through_previous_response_id(client):
    first = client.responses.create(
        input=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice="required", max_output_tokens=60, **GREEDY
    )
    call = first.output[0]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"sky": "sunny"})}
    # the whole conversation sent back, as the client's docs do it
    replay = [
        {"role": "user", "content": WEATHER_QUESTION},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        result,
    ]
    again = client.responses.create(input=replay, tools=[WEATHER_TOOL], max_output_tokens=30, **GREEDY)
    chained = client.responses.create(
        input=[result], previous_response_id=first.id, tools=[WEATHER_TOOL], max_output_tokens=30, **GREEDY
    )
    for r in (again, chained):
        assert r.status in ("completed", "incomplete") and r.output
    # both render the same prompt: the call and its result reach the template the same way
    assert again.usage.input_tokens == chained.usage.input_tokens
    listed = client.responses.input_items.list(chained.id).data
    assert [i.type for i in listed] == ["function_call_output"] and listed[0].call_id == call.call_id
    listed = client.responses.input_items.list(again.id, order="asc").data
    assert [i.type for i in listed] == ["message", "function_call", "function_call_output"]


def test_a_streamed_call_sends_the_function_call_events(client):
    with client.responses.stream(
        input=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=60, **GREEDY
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = events[2].item
    assert added.type == "function_call" and added.status == "in_progress" and added.name == "get_weather"
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    call = final.output[0]
    assert deltas == done.arguments == call.arguments and done.item_id == call.id == added.id
    jsonschema.validate(json.loads(call.arguments), WEATHER_TOOL["parameters"])
    whole = client.responses.create(
        input=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=60, **GREEDY
    )
    assert whole.output[0].arguments == call.arguments
