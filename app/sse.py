"""The one SSE driver of every streaming route, on Litestar's `ServerSentEvent`.

A route supplies `render` (its chunks for one engine event) and optionally a `head` and a `tail`; the driver
adds keep-alive comments while the request waits, the error frame when the engine fails mid-stream (or the
route's own `failed` events) and, for OpenAI streams, `data: [DONE]`. A client that disconnects stops the
iteration, which cancels the generation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable

import structlog
from litestar.response import ServerSentEvent, ServerSentEventMessage
from msgspec import Struct

from app import generation
from app.engine.request import TokenEvent
from app.generation import KEEPALIVE, Job
from app.schemas import ErrorBody, ErrorDetail, encode

KEEPALIVE_MESSAGE = ServerSentEventMessage(data=None, comment="keep-alive", sep="\n")
DONE_MESSAGE = ServerSentEventMessage(data="[DONE]", sep="\n")

Render = Callable[[int, TokenEvent], Iterable[Struct]]

log = structlog.get_logger("app.sse")


def message(payload: Struct, event: str | None = None) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=encode(payload), event=event, sep="\n")


def sse_response(
    job: Job,
    keepalive_s: float,
    render: Render,
    *,
    openai: bool,
    head: Iterable[Struct] = (),
    tail: Callable[[], Iterable[Struct]] = tuple,
    failed: Callable[[str], Iterable[Struct]] | None = None,
    named: bool = False,
) -> ServerSentEvent:
    """Native streams end with the final rendered event, or an `event: error` frame; OpenAI streams end with
    the tail (the usage chunk) and `data: [DONE]`, or an error data frame and `data: [DONE]`.

    `failed(message)` replaces the error frame of a mid-stream engine failure with the route's own events;
    `named` makes each payload's `type` its SSE event name (the Responses API's typed events)."""
    return ServerSentEvent(_messages(job, keepalive_s, render, openai, head, tail, failed, named))


async def _messages(
    job: Job,
    keepalive_s: float,
    render: Render,
    openai: bool,
    head: Iterable[Struct],
    tail: Callable[[], Iterable[Struct]],
    failed: Callable[[str], Iterable[Struct]] | None,
    named: bool,
) -> AsyncIterator[ServerSentEventMessage]:
    def framed(payload: Struct) -> ServerSentEventMessage:
        return message(payload, event=getattr(payload, "type", None) if named else None)

    for payload in head:
        yield framed(payload)
    async with contextlib.aclosing(generation.merged(job, keepalive_s)) as events:
        async for item in events:
            if item is KEEPALIVE:
                yield KEEPALIVE_MESSAGE
                continue
            index, event = item
            error, frames = event.error, []
            if error is None:
                try:
                    frames = [framed(payload) for payload in render(index, event)]
                except Exception:  # a route's bug, not the client's input: end the stream as a failure
                    log.exception("stream render failed", choice=index)
                    error = "internal error while rendering the stream"
            if error is not None:
                for frame in _failure(error, openai, failed, framed):
                    yield frame
                return
            for frame in frames:
                yield frame
    for payload in tail():
        yield framed(payload)
    if openai:
        yield DONE_MESSAGE


def _failure(
    error: str,
    openai: bool,
    failed: Callable[[str], Iterable[Struct]] | None,
    framed: Callable[[Struct], ServerSentEventMessage],
) -> Iterable[ServerSentEventMessage]:
    """The last frames of a stream that failed: the route's own events or one error frame, then [DONE]."""
    if failed is not None:
        yield from (framed(payload) for payload in failed(error))
    else:
        body = ErrorBody(ErrorDetail(message=error, type="server_error", code="engine_error"))
        yield message(body, event=None if openai else "error")
    if openai:
        yield DONE_MESSAGE
