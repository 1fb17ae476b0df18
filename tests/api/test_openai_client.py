"""The official `openai` client, unchanged, against the OpenAI-compatible routes."""

from __future__ import annotations

import openai
import pytest

from tests.api.cold import cold

MODEL = "SmolLM2-135M-Instruct"
# a question whose greedy answer has a wide margin: quantization noise cannot flip it on any ISA (the French
# capital's first-token margin is 0.08 nats, and int8 activations without VNNI answer it wrongly)
CHAT = [{"role": "user", "content": "What is the capital of Japan?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_chat_completion(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24, temperature=0)
    choice = r.choices[0]
    assert choice.message.role == "assistant" and "Tokyo" in choice.message.content
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens == r.usage.total_tokens - r.usage.prompt_tokens


def test_chat_streaming_equals_non_streaming_and_reports_usage(client):
    kwargs = dict(model=MODEL, messages=CHAT, max_tokens=40, temperature=0, ignore_eos=True)
    whole = client.chat.completions.create(
        **{k: v for k, v in kwargs.items() if k != "ignore_eos"}, extra_body={"ignore_eos": True}
    )
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40


def test_completions_streaming_and_not(client):
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=12, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.prompt_tokens == 3
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="The sky is", max_tokens=12, temperature=0, stream=True)
        if c.choices
    )
    assert streamed == r.choices[0].text


SEEDED = dict(model=MODEL, messages=CHAT, max_tokens=20, temperature=1.0, seed=1234)


def test_seed_gives_the_same_sample_and_n_gives_several_choices(client):
    a = client.chat.completions.create(extra_body=cold(), **SEEDED)
    b = client.chat.completions.create(extra_body=cold(), **SEEDED)
    assert a.choices[0].message.content == b.choices[0].message.content
    several = client.chat.completions.create(extra_body=cold(), **{**SEEDED, "n": 3})
    assert [c.index for c in several.choices] == [0, 1, 2]
    assert len({c.message.content for c in several.choices}) > 1
    assert 3 <= several.usage.completion_tokens <= 60  # summed over the three choices
    assert several.usage.prompt_tokens == a.usage.prompt_tokens  # the prompt counts once


def test_choice_i_samples_with_seed_plus_i(make_server, real_models):
    """On fp32, where a row's logits do not depend on the batch it decodes in (on the quantized variants a
    batch of 3 and a batch of 1 take different kernels, so a seeded sample can drift after a near-tie)."""
    srv = make_server(model=real_models.get("gqa", "fp32"))
    fp32 = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0)
    several = fp32.chat.completions.create(extra_body=cold(), **{**SEEDED, "n": 3})
    for i in (0, 2):
        alone = fp32.chat.completions.create(extra_body=cold(), **{**SEEDED, "seed": SEEDED["seed"] + i})
        assert several.choices[i].message.content == alone.choices[0].message.content, i


def test_stop_presence_and_frequency_penalties_and_max_tokens(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=30, temperature=0, stop=["Tokyo"])
    assert "Tokyo" not in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=5, temperature=0, presence_penalty=1.5, frequency_penalty=1.0
    )
    assert r.usage.completion_tokens <= 5


def test_logprobs_chat_and_completions(client):
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    first = content[0]
    assert len(first.top_logprobs) == 3 and first.top_logprobs[0].logprob >= first.top_logprobs[1].logprob
    assert first.token == first.top_logprobs[0].token and first.logprob <= 0  # greedy picks the top token
    c = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=4, temperature=0, logprobs=2)
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert "".join(lp.tokens) == c.choices[0].text


def test_errors_come_back_as_openai_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="not-this-one", messages=CHAT)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=CHAT, top_p=0)
    assert err.value.body["param"] == "top_p"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=100_000)
    assert err.value.body["code"] == "context_length_exceeded"
