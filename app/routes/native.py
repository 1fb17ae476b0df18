"""POST /v1/generate: the native route (TGI-like), plain JSON or SSE."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Response, Stream

from app import generation, structured
from app.generation import KEEPALIVE, Job
from app.schemas import ErrorBody, ErrorDetail, GenerateChunk, GenerateRequest, GenerateResponse, error_responses
from app.sse import KEEPALIVE_FRAME, frame, sse_response
from app.state import Gateway


@post(
    "/v1/generate",
    summary="Generate text from a prompt (native route)",
    tags=["native"],
    status_code=200,
    responses=error_responses(400, 401, 413, 429, 500, 503),
)
async def generate(
    request: Request[Any, Any, Any], state: State, data: JSONBody[GenerateRequest]
) -> Response[Any] | Stream:
    gateway: Gateway = state.gateway
    engine = gateway.require_engine()
    settings = gateway.settings
    if settings.log_prompts:
        request.scope["state"]["log"]["prompt"] = data.prompt
    prompt_ids = engine.tokenizer.encode(data.prompt)
    grammar = structured.native_grammar(data)
    await structured.compile_grammar(engine, gateway.metrics, grammar)
    job = generation.start(
        request.scope,
        gateway,
        prompt_ids,
        data,
        max_new_tokens=data.max_new_tokens or data.max_length,
        min_new_tokens=data.min_new_tokens,
        grammar=grammar,
    )
    if data.stream:
        return sse_response(_stream(job, settings.sse_keepalive))
    await generation.collect(job, request)
    choice = job.choices[0]
    return Response(
        GenerateResponse(
            generated_text=choice.text,
            finish_reason=choice.finish_reason or "abort",
            usage=job.usage(),
            timings=job.timings(),
        )
    )


async def _stream(job: Job, keepalive: float) -> AsyncIterator[bytes]:
    """One event per text piece, a final event with finish reason, usage and timings; an `error` event if the
    engine fails."""
    async with contextlib.aclosing(generation.merged(job, keepalive)) as events:
        async for item in events:
            if item is KEEPALIVE:
                yield KEEPALIVE_FRAME
                continue
            _, event = item
            if event.error:
                error = ErrorBody(ErrorDetail(message=event.error, type="server_error", code="engine_error"))
                yield frame(error, event="error")
                return
            if event.finished:
                choice = job.choices[0]
                yield frame(
                    GenerateChunk(
                        text=event.text,
                        finish_reason=choice.finish_reason,
                        generated_text=choice.text,
                        usage=job.usage(),
                        timings=job.timings(),
                    )
                )
            elif event.text:
                yield frame(GenerateChunk(text=event.text))
