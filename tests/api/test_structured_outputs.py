"""Structured outputs, tool calls and logit_bias through the official openai client on a real server."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import openai
import pydantic
import pytest

from benchmarks.schemas import OBJ, SCHEMAS
from tests.api.cold import cold

MODEL = "SmolLM2-135M-Instruct"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                **OBJ,
                "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}},
                "required": ["city", "unit"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers",
            "parameters": {
                **OBJ,
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    },
]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def ask_json(client, schema, **kw):
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Answer with a JSON value for a made-up example."}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        max_tokens=48,
        extra_body=cold(),
        **kw,
    )


def joined(stream) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def test_twenty_schemas_greedy_sampled_and_streamed_all_validate(client):
    def run(schema):
        greedy = ask_json(client, schema, temperature=0)
        sampled = ask_json(client, schema, temperature=1.0, seed=7)
        streamed = joined(ask_json(client, schema, temperature=0, stream=True))
        return greedy, sampled, streamed

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, SCHEMAS))
    stopped = 0
    for schema, (greedy, sampled, (stream_text, stream_finish)) in zip(SCHEMAS, results, strict=True):
        for r in (greedy, sampled):
            choice = r.choices[0]
            assert choice.finish_reason in ("stop", "length")
            if choice.finish_reason == "stop":  # max_tokens is the only way to a truncated answer
                jsonschema.validate(json.loads(choice.message.content), schema)
                stopped += 1
        assert stream_text == greedy.choices[0].message.content and stream_finish == greedy.choices[0].finish_reason
    assert stopped >= 0.9 * 2 * len(SCHEMAS)


def test_json_object_gives_an_object(client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a cat in JSON."}],
        response_format={"type": "json_object"},
        max_tokens=40,
        temperature=0,
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # truncated by max_tokens: still the start of an object
        assert r.choices[0].finish_reason == "length" and r.choices[0].message.content.startswith("{")


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=16)
    population: int = pydantic.Field(ge=0)


def test_pydantic_parse_helper(client):
    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    r = parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a city and its population."}],
        response_format=City,
        max_tokens=40,
        temperature=0,
    )
    assert isinstance(r.choices[0].message.parsed, City)


def check_calls(message, names):
    assert message.tool_calls
    for call in message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function" and call.function.name in names
        spec = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.function.name)
        jsonschema.validate(json.loads(call.function.arguments), spec)


def test_required_and_named_tool_choice_give_valid_calls(client):
    for choice, names in (
        ("required", {"get_weather", "add"}),
        ({"type": "function", "function": {"name": "add"}}, {"add"}),
    ):
        r = client.chat.completions.create(
            model=MODEL,
            messages=WEATHER,
            tools=TOOLS,
            tool_choice=choice,
            parallel_tool_calls=False,
            max_tokens=80,
            temperature=0,
        )
        assert r.choices[0].finish_reason == "tool_calls", r.choices[0].message
        check_calls(r.choices[0].message, names)


def test_streamed_tool_call_pieces_join_to_valid_json(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=WEATHER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60,
        temperature=0,
        stream=True,
        extra_body=cold(),
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for d in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            if d.id:
                call["id"], call["name"] = d.id, d.function.name
            call["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls" and calls[0]["id"] and calls[0]["name"] == "get_weather"
    jsonschema.validate(json.loads(calls[0]["arguments"]), TOOLS[0]["function"]["parameters"])
    whole = client.chat.completions.create(
        model=MODEL,
        messages=WEATHER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60,
        temperature=0,
        extra_body=cold(),
    )
    assert whole.choices[0].message.tool_calls[0].function.arguments == calls[0]["arguments"]


def test_round_trip_call_result_answer(client, server):
    first = client.chat.completions.create(
        model=MODEL,
        messages=WEATHER,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=60,
        temperature=0,
    )
    call = first.choices[0].message.tool_calls[0]
    follow = [
        *WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21, "sky": "sunny"})},
    ]
    r = client.chat.completions.create(
        model=MODEL, messages=follow, tools=TOOLS, tool_choice="none", max_tokens=30, temperature=0
    )
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls
    ids = httpx.post(f"{server.url}/v1/tokenize", json={"messages": follow}).json()["tokens"]
    rendered = httpx.post(f"{server.url}/v1/detokenize", json={"tokens": ids}).json()["prompt"]
    assert (
        f'<tool_call>{{"name": "{call.function.name}", "arguments": {call.function.arguments}}}</tool_call>' in rendered
    )
    assert "<|im_start|>tool\n" in rendered and '"sky": "sunny"' in rendered


def test_tool_choice_none_gives_text(client):
    r = client.chat.completions.create(
        model=MODEL, messages=WEATHER, tools=TOOLS, tool_choice="none", max_tokens=20, temperature=0
    )
    assert r.choices[0].message.content and r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")


def test_logit_bias_bans_and_forces(client, server):
    prompt = "The capital of France is"
    plain = client.completions.create(model=MODEL, prompt=prompt, max_tokens=1, temperature=0, logprobs=1)
    greedy_text = plain.choices[0].text
    tokenized = httpx.post(f"{server.url}/v1/tokenize", json={"prompt": greedy_text}).json()
    greedy_id = tokenized["tokens"][0]
    banned = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=1, temperature=0, logit_bias={str(greedy_id): -100}
    )
    assert banned.choices[0].text != greedy_text
    forced = client.chat.completions.create(
        model=MODEL, messages=WEATHER, max_tokens=3, temperature=0, logit_bias={"28": 100}
    )
    assert forced.choices[0].message.content.startswith(
        httpx.post(f"{server.url}/v1/detokenize", json={"tokens": [28]}).json()["prompt"]
    )


def test_constrained_and_plain_mixed_in_one_batch_match_solo(client):
    def plain_text() -> str:
        r = client.chat.completions.create(
            model=MODEL, messages=WEATHER, max_tokens=24, temperature=0, extra_body=cold()
        )
        return r.choices[0].message.content

    schema = SCHEMAS[9]
    solo_json = ask_json(client, schema, temperature=0).choices[0].message.content
    solo_text = plain_text()

    def one(i):
        if i % 2:
            return ask_json(client, schema, temperature=0).choices[0].message.content
        return plain_text()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert results == [solo_text, solo_json] * 3


def test_native_generate_json_schema_regex_grammar(server):
    url = f"{server.url}/v1/generate"
    r = httpx.post(url, json={"prompt": "A number:", "regex": "[0-9]{3}", "max_new_tokens": 8}, timeout=60).json()
    assert len(r["generated_text"]) == 3 and r["generated_text"].isdigit()
    schema = SCHEMAS[1]
    r = httpx.post(url, json={"prompt": "JSON:", "json_schema": schema, "max_new_tokens": 20}, timeout=60).json()
    jsonschema.validate(json.loads(r["generated_text"]), schema)
    r = httpx.post(
        url, json={"prompt": "Answer:", "grammar": 'start: "yes" | "no"', "max_new_tokens": 4}, timeout=60
    ).json()
    assert r["generated_text"] in ("yes", "no") and r["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("route", "body", "param", "needle"),
    [
        (
            "chat",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "foo"}}}},
            "response_format.json_schema.schema",
            "foo",
        ),
        (
            "chat",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
            "schema",
        ),
        (
            "chat",
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "nope",
        ),
        ("chat", {"tool_choice": "required"}, "tool_choice", "needs tools"),
        (
            "chat",
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "bar"}}}]},
            "tools[0].function.parameters",
            "bar",
        ),
        ("chat", {"logit_bias": {"5": 101}}, "logit_bias", "[-100, 100]"),
        ("completions", {"logit_bias": {"99999999": 1}}, "logit_bias", "vocabulary"),
        ("completions", {"logit_bias": {"abc": 1}}, "logit_bias", "token ids"),
        ("generate", {"regex": "a(b"}, "regex", "unclosed"),
        ("generate", {"regex": "a", "grammar": 'start: "a"'}, "grammar", "at most one"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(server, route, body, param, needle):
    base = {
        "chat": {"model": MODEL, "messages": WEATHER},
        "completions": {"model": MODEL, "prompt": "Hi"},
        "generate": {"prompt": "Hi"},
    }[route]
    path = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "generate": "/v1/generate"}[route]
    r = httpx.post(
        f"{server.url}{path}",
        json={**base, **body, "max_tokens" if route != "generate" else "max_new_tokens": 4},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and needle in error["message"]


def test_metrics_count_constrained_requests_and_compile_time(server, client):
    ask_json(client, SCHEMAS[3], temperature=0)
    m = server.metrics()
    assert m['llm_constrained_requests_total{kind="json_schema"}'] >= 1
    assert m["llm_grammar_compile_seconds_count"] >= 1 and m["llm_grammar_mask_seconds_count"] >= 1
