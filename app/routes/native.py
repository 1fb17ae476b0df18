"""POST /v1/generate: the native route (TGI-like), plain JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Response, Stream

from app import generation
from app.engine.params import SamplingParams
from app.generation import KEEPALIVE, Job
from app.routes.system import request_id
from app.schemas import ErrorBody, ErrorDetail, GenerateChunk, GenerateRequest, GenerateResponse
from app.sse import KEEPALIVE_FRAME, frame, sse_response
from app.state import Gateway


def sampling_params(data: GenerateRequest, default_max: int) -> SamplingParams:
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_new_tokens=data.max_new_tokens or data.max_length or default_max,
        min_new_tokens=data.min_new_tokens,
        temperature=data.temperature,
        top_k=data.top_k,
        top_p=data.top_p,
        min_p=data.min_p,
        repetition_penalty=data.repetition_penalty,
        presence_penalty=data.presence_penalty,
        frequency_penalty=data.frequency_penalty,
        seed=data.seed,
        stop=stop,
        stop_token_ids=tuple(data.stop_token_ids or ()),
        ignore_eos=data.ignore_eos,
    )


@post(
    "/v1/generate", summary="Generate text from a prompt (native route)", tags=["native"], status_code=200, responses={}
)
async def generate(
    request: Request[Any, Any, Any], state: State, data: JSONBody[GenerateRequest]
) -> Response[Any] | Stream:
    gateway: Gateway = state.gateway
    engine = gateway.require_engine()
    settings = gateway.settings
    log: dict[str, Any] = request.scope["state"]["log"]
    if settings.log_prompts:
        log["prompt"] = data.prompt
    prompt_ids = engine.tokenizer.encode(data.prompt)
    explicit = data.max_new_tokens or data.max_length
    default_max = max(1, min(settings.default_max_tokens, engine.max_len - len(prompt_ids)))
    params = sampling_params(data, explicit or default_max)
    job = generation.submit(engine, prompt_ids, params, 1, request_id(request), settings.request_timeout, log)
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
    async for item in generation.merged(job, keepalive):
        if item is KEEPALIVE:
            yield KEEPALIVE_FRAME
            continue
        _, event = item
        if event.error:
            yield frame(
                ErrorBody(ErrorDetail(message=event.error, type="server_error", code="engine_error")), event="error"
            )
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
