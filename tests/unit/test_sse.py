"""The SSE driver's endings on fixed event sequences: no engine, no HTTP."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from app import sse
from app.engine.request import TokenEvent, Usage
from app.engine.stopping import FinishReason


class Chunk(msgspec.Struct):
    text: str


def _events(*texts: str) -> list[TokenEvent]:
    last = len(texts) - 1
    return [
        TokenEvent("r", text, [i], None, Usage(1, i + 1), FinishReason.STOP if i == last else None)
        for i, text in enumerate(texts)
    ]


def _frames(monkeypatch, events, render, *, openai: bool) -> list[str]:
    async def merged(job, keepalive_s):
        for event in events:
            yield 0, event

    monkeypatch.setattr(sse.generation, "merged", merged)

    async def run():
        messages = sse._messages(None, 1.0, render, openai, (), tuple, None, False)
        return [m async for m in messages]

    return [(m.event, m.data) for m in asyncio.run(run())]


def _echo(index, event):
    yield Chunk(event.text)


@pytest.mark.parametrize("openai", [True, False])
def test_a_render_bug_ends_the_stream_with_an_error_frame(monkeypatch, openai):
    def render(index, event):
        if event.text == "b":
            raise KeyError("bug")
        yield Chunk(event.text)

    frames = _frames(monkeypatch, _events("a", "b", "c"), render, openai=openai)
    assert json.loads(frames[0][1]) == {"text": "a"}
    error = json.loads(frames[1][1])["error"]
    assert error["type"] == "server_error" and "rendering" in error["message"]
    assert frames[1][0] == (None if openai else "error")
    assert frames[2:] == ([(None, "[DONE]")] if openai else [])


def test_a_clean_stream_renders_every_event_then_done(monkeypatch):
    frames = _frames(monkeypatch, _events("a", "b"), _echo, openai=True)
    assert [json.loads(d)["text"] for _, d in frames[:-1]] == ["a", "b"]
    assert frames[-1] == (None, "[DONE]")
