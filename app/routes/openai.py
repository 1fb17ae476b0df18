"""POST /v1/completions and /v1/chat/completions, compatible with the OpenAI API (streaming included)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Response, Stream

from app import generation
from app.engine.engine import Engine
from app.engine.params import SamplingParams
from app.engine.request import TokenLogprob
from app.errors import ApiError
from app.generation import KEEPALIVE, Job
from app.routes.messages import to_template_messages
from app.routes.system import request_id
from app.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatLogprobs,
    ChatTokenLogprob,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    ErrorBody,
    ErrorDetail,
    TopLogprob,
)
from app.sse import DONE_FRAME, KEEPALIVE_FRAME, frame, sse_response
from app.state import Gateway


def _refuse_unsupported(data: CompletionRequest | ChatCompletionRequest) -> None:
    if data.logit_bias:
        raise ApiError(400, "logit_bias is not supported", param="logit_bias")
    if isinstance(data, CompletionRequest):
        if data.echo:
            raise ApiError(400, "echo is not supported", param="echo")
        if data.suffix:
            raise ApiError(400, "suffix is not supported", param="suffix")
        if data.best_of not in (None, data.n):
            raise ApiError(400, "best_of is not supported (use n)", param="best_of")
    else:
        if data.tools:
            raise ApiError(400, "tools are not supported by this server", param="tools")
        if data.tool_choice not in (None, "none"):
            raise ApiError(400, "tool_choice is not supported", param="tool_choice")
        if data.response_format and data.response_format.get("type") != "text":
            raise ApiError(400, 'only response_format {"type": "text"} is supported', param="response_format")


def _params(
    data: CompletionRequest | ChatCompletionRequest, max_tokens: int, logprobs: bool, top_logprobs: int
) -> SamplingParams:
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_new_tokens=max_tokens,
        min_new_tokens=data.min_tokens,
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
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def _completion_prompt(engine: Engine, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        return engine.tokenizer.encode(prompt)
    if prompt and all(isinstance(t, int) for t in prompt):
        vocab = engine.manifest.model.vocab_size
        if any(not 0 <= t < vocab for t in prompt):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        return list(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        return _completion_prompt(engine, prompt[0])
    raise ApiError(
        400, "prompt must be one string or one list of token ids (batches of prompts are not supported)", param="prompt"
    )


def _start(
    request: Request[Any, Any, Any],
    gateway: Gateway,
    data: CompletionRequest | ChatCompletionRequest,
    prompt_ids: list[int],
    requested_max: int | None,
    logprobs: bool,
    top_logprobs: int,
) -> Job:
    engine = gateway.require_engine()
    settings = gateway.settings
    default_max = max(1, min(settings.default_max_tokens, engine.max_len - len(prompt_ids)))
    params = _params(data, requested_max or default_max, logprobs, top_logprobs)
    log = request.scope["state"]["log"]
    return generation.submit(engine, prompt_ids, params, data.n, request_id(request), settings.request_timeout, log)


def _fingerprint(gateway: Gateway) -> str:
    m = gateway.manifest
    return f"llm-gateway-{m.graph}-{m.quant}-{m.source.sha256[:8]}"


# -- /v1/completions ---------------------------------------------------------------------------------------


@post("/v1/completions", summary="OpenAI-compatible text completion", tags=["openai"], status_code=200)
async def completions(
    request: Request[Any, Any, Any], state: State, data: JSONBody[CompletionRequest]
) -> Response[Any] | Stream:
    gateway: Gateway = state.gateway
    gateway.check_model(data.model)
    _refuse_unsupported(data)
    engine = gateway.require_engine()
    prompt_ids = _completion_prompt(engine, data.prompt)
    if gateway.settings.log_prompts:
        request.scope["state"]["log"]["prompt"] = data.prompt
    top = data.logprobs or 0
    job = _start(request, gateway, data, prompt_ids, data.max_tokens, data.logprobs is not None, top)
    meta = (f"cmpl-{uuid.uuid4().hex}", int(time.time()), gateway.model_id, _fingerprint(gateway))
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    if data.stream:
        return sse_response(_completion_stream(job, engine, meta, include_usage, gateway.settings.sse_keepalive))
    await generation.collect(job, request)
    choices = [
        CompletionChoice(
            index=c.index,
            text=c.text,
            finish_reason=c.finish_reason,
            logprobs=_completion_logprobs(engine, c.logprobs, 0) if data.logprobs is not None else None,
        )
        for c in job.choices
    ]
    return Response(
        Completion(
            id=meta[0], created=meta[1], model=meta[2], choices=choices, usage=job.usage(), system_fingerprint=meta[3]
        )
    )


async def _completion_stream(
    job: Job, engine: Engine, meta: tuple[str, int, str, str], include_usage: bool, keepalive: float
) -> AsyncIterator[bytes]:
    cid, created, model, fingerprint = meta
    offsets = [0] * len(job.choices)
    async for item in generation.merged(job, keepalive):
        if item is KEEPALIVE:
            yield KEEPALIVE_FRAME
            continue
        index, event = item
        if event.error:
            yield _error_frame(event.error)
            yield DONE_FRAME
            return
        if not event.text and not event.finished and not event.logprobs:
            continue
        logprobs = None
        if event.logprobs:
            logprobs = _completion_logprobs(engine, event.logprobs, offsets[index])
        offsets[index] += len(event.text)
        finish = job.choices[index].finish_reason if event.finished else None
        chunk = Completion(
            id=cid,
            created=created,
            model=model,
            usage=None,
            system_fingerprint=fingerprint,
            choices=[CompletionChoice(index=index, text=event.text, logprobs=logprobs, finish_reason=finish)],
        )
        yield frame(chunk)
    if include_usage:
        yield frame(
            Completion(
                id=cid, created=created, model=model, choices=[], usage=job.usage(), system_fingerprint=fingerprint
            )
        )
    yield DONE_FRAME


def _completion_logprobs(engine: Engine, items: list[TokenLogprob], offset: int) -> CompletionLogprobs:
    tok = engine.tokenizer
    tokens, token_lps, tops, offsets = [], [], [], []
    for item in items:
        text = tok.token_text(item.token_id)
        offsets.append(offset)
        offset += len(text)
        tokens.append(text)
        token_lps.append(item.logprob)
        tops.append({tok.token_text(t): lp for t, lp in item.top})
    return CompletionLogprobs(tokens=tokens, token_logprobs=token_lps, top_logprobs=tops, text_offset=offsets)


# -- /v1/chat/completions ----------------------------------------------------------------------------------


@post("/v1/chat/completions", summary="OpenAI-compatible chat completion", tags=["openai"], status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], state: State, data: JSONBody[ChatCompletionRequest]
) -> Response[Any] | Stream:
    gateway: Gateway = state.gateway
    gateway.check_model(data.model)
    _refuse_unsupported(data)
    engine = gateway.require_engine()
    messages = to_template_messages(data.messages)
    if gateway.settings.log_prompts:
        request.scope["state"]["log"]["prompt"] = messages
    prompt_ids = engine.tokenizer.encode_chat(messages)
    top = data.top_logprobs or 0
    if top and not data.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    job = _start(request, gateway, data, prompt_ids, data.max_completion_tokens or data.max_tokens, data.logprobs, top)
    meta = (f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), gateway.model_id, _fingerprint(gateway))
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    if data.stream:
        return sse_response(_chat_stream(job, engine, meta, include_usage, gateway.settings.sse_keepalive))
    await generation.collect(job, request)
    choices = [
        ChatChoice(
            index=c.index,
            message=AssistantMessage(role="assistant", content=c.text),
            finish_reason=c.finish_reason,
            logprobs=ChatLogprobs(_chat_logprobs(engine, c.logprobs)) if data.logprobs else None,
        )
        for c in job.choices
    ]
    return Response(
        ChatCompletion(
            id=meta[0], created=meta[1], model=meta[2], choices=choices, usage=job.usage(), system_fingerprint=meta[3]
        )
    )


async def _chat_stream(
    job: Job, engine: Engine, meta: tuple[str, int, str, str], include_usage: bool, keepalive: float
) -> AsyncIterator[bytes]:
    cid, created, model, fingerprint = meta

    def chunk(index: int, delta: ChatDelta, finish: str | None, logprobs: ChatLogprobs | None = None) -> bytes:
        return frame(
            ChatCompletionChunk(
                id=cid,
                created=created,
                model=model,
                system_fingerprint=fingerprint,
                choices=[ChatChunkChoice(index=index, delta=delta, logprobs=logprobs, finish_reason=finish)],
            )
        )

    for choice in job.choices:
        yield chunk(choice.index, ChatDelta(role="assistant", content=""), None)
    async for item in generation.merged(job, keepalive):
        if item is KEEPALIVE:
            yield KEEPALIVE_FRAME
            continue
        index, event = item
        if event.error:
            yield _error_frame(event.error)
            yield DONE_FRAME
            return
        logprobs = ChatLogprobs(_chat_logprobs(engine, event.logprobs)) if event.logprobs else None
        if event.text or logprobs is not None:
            yield chunk(index, ChatDelta(content=event.text), None, logprobs)
        if event.finished:
            yield chunk(index, ChatDelta(), job.choices[index].finish_reason)
    if include_usage:
        yield frame(
            ChatCompletionChunk(
                id=cid, created=created, model=model, choices=[], system_fingerprint=fingerprint, usage=job.usage()
            )
        )
    yield DONE_FRAME


def _chat_logprobs(engine: Engine, items: list[TokenLogprob]) -> list[ChatTokenLogprob]:
    tok = engine.tokenizer

    def entry(token_id: int) -> tuple[str, list[int]]:
        text = tok.token_text(token_id)
        return text, list(text.encode("utf-8"))

    out = []
    for item in items:
        text, raw = entry(item.token_id)
        tops = [TopLogprob(token=t, logprob=lp, bytes=b) for (t, b), lp in ((entry(i), lp) for i, lp in item.top)]
        out.append(ChatTokenLogprob(token=text, logprob=item.logprob, bytes=raw, top_logprobs=tops))
    return out


def _error_frame(message: str) -> bytes:
    return frame(ErrorBody(ErrorDetail(message=message, type="server_error", code="engine_error")))
