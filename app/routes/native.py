"""POST /v1/generate: the native route (TGI-like), plain JSON or SSE."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Response, ServerSentEvent

from app import generation, structured
from app.engine.request import TokenEvent
from app.engine.stopping import FinishReason
from app.generation import Job
from app.middleware import RequestContext
from app.schemas import GenerateChunk, GenerateRequest, GenerateResponse, error_responses
from app.sse import Render, sse_response
from app.state import Gateway


@post(
    "/v1/generate",
    summary="Generate text from a prompt (native route)",
    tags=["native"],
    status_code=200,
    responses=error_responses(400, 401, 413, 429, 500, 503),
)
async def generate(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    context: NamedDependency[RequestContext],
    data: JSONBody[GenerateRequest],
) -> Response[Any] | ServerSentEvent:
    engine = gateway.require_engine()
    settings = gateway.settings
    if settings.log_prompts:
        context.log["prompt"] = data.prompt
    prompt_ids = engine.tokenizer.encode(data.prompt)
    grammar = structured.native_grammar(data)
    await structured.compile_grammar(engine, gateway.metrics, grammar)
    job = generation.start(
        context,
        gateway,
        prompt_ids,
        data,
        max_new_tokens=data.max_new_tokens or data.max_length,
        min_new_tokens=data.min_new_tokens,
        grammar=grammar,
    )
    if data.stream:
        return sse_response(job, settings.sse_keepalive, _renderer(job), openai=False)
    await generation.collect(job, request)
    choice = job.choices[0]
    return Response(
        GenerateResponse(
            generated_text=choice.text,
            finish_reason=choice.finish_reason or FinishReason.ABORT,
            usage=job.usage(),
            timings=job.timings(),
        )
    )


def _renderer(job: Job) -> Render:
    """One event per text piece, then a final event with finish reason, the whole text, usage and timings."""

    def render(index: int, event: TokenEvent) -> Iterator[GenerateChunk]:
        if event.finished:
            choice = job.choices[0]
            yield GenerateChunk(
                text=event.text,
                finish_reason=choice.finish_reason,
                generated_text=choice.text,
                usage=job.usage(),
                timings=job.timings(),
            )
        elif event.text:
            yield GenerateChunk(text=event.text)

    return render
