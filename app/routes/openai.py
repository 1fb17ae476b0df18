"""POST /v1/completions and /v1/chat/completions, compatible with the OpenAI API (streaming included)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Response, ServerSentEvent

from app import generation, structured, tools
from app.engine.engine import Engine
from app.engine.request import TokenEvent, TokenLogprob
from app.engine.stopping import FinishReason
from app.errors import ApiError
from app.generation import Job
from app.middleware import RequestContext
from app.routes.messages import to_template_messages
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
    TopLogprob,
    error_responses,
)
from app.sse import sse_response
from app.state import Gateway


def _refuse_unsupported(data: CompletionRequest | ChatCompletionRequest) -> None:
    if isinstance(data, CompletionRequest):
        if data.echo:
            raise ApiError(400, "echo is not supported", param="echo")
        if data.suffix:
            raise ApiError(400, "suffix is not supported", param="suffix")
        if data.best_of not in (None, data.n):
            raise ApiError(400, "best_of is not supported (use n)", param="best_of")


def _completion_prompt(engine: Engine, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        return engine.tokenizer.encode(prompt)
    if prompt and all(isinstance(t, int) for t in prompt):
        generation.check_token_ids(engine, prompt, "prompt")
        return list(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        return _completion_prompt(engine, prompt[0])
    raise ApiError(
        400, "prompt must be one string or one list of token ids (batches of prompts are not supported)", param="prompt"
    )


class Meta(NamedTuple):
    """The fields every OpenAI response and chunk of one request repeats."""

    id: str
    created: int
    model: str
    system_fingerprint: str

    @classmethod
    def new(cls, prefix: str, gateway: Gateway) -> Meta:
        m = gateway.manifest
        fingerprint = f"llm-gateway-{m.graph}-{m.quant}-{m.source.sha256[:8]}"
        return cls(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), gateway.model_id, fingerprint)


# -- /v1/completions ---------------------------------------------------------------------------------------


@post(
    "/v1/completions",
    summary="OpenAI-compatible text completion",
    tags=["openai"],
    status_code=200,
    responses=error_responses(400, 401, 404, 413, 429, 500, 503),
)
async def completions(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    context: NamedDependency[RequestContext],
    data: JSONBody[CompletionRequest],
) -> Response[Any] | ServerSentEvent:
    gateway.check_model(data.model)
    _refuse_unsupported(data)
    engine = gateway.require_engine()
    prompt_ids = _completion_prompt(engine, data.prompt)
    if gateway.settings.log_prompts:
        context.log["prompt"] = data.prompt
    grammar = structured.response_format_grammar(data.response_format)
    bias = structured.logit_bias(data.logit_bias, engine.manifest.model.vocab_size)
    await structured.compile_grammar(engine, gateway.metrics, grammar, structured.format_label(data.response_format))
    job = generation.start(
        context,
        gateway,
        prompt_ids,
        data,
        max_new_tokens=data.max_tokens,
        min_new_tokens=data.min_tokens,
        n=data.n,
        logprobs=data.logprobs is not None,
        top_logprobs=data.logprobs or 0,
        grammar=grammar,
        logit_bias=bias,
    )
    meta = Meta.new("cmpl", gateway)
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    if data.stream:
        return _completion_stream(job, engine, meta, include_usage, gateway.settings.sse_keepalive)
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
    return Response(Completion(**meta._asdict(), choices=choices, usage=job.usage()))


def _completion_stream(job: Job, engine: Engine, meta: Meta, include_usage: bool, keepalive: float) -> ServerSentEvent:
    offsets = [0] * len(job.choices)

    def render(index: int, event: TokenEvent) -> Iterator[Completion]:
        if not event.text and not event.finished and not event.logprobs:
            return
        logprobs = _completion_logprobs(engine, event.logprobs, offsets[index]) if event.logprobs else None
        offsets[index] += len(event.text)
        finish = job.choices[index].finish_reason if event.finished else None
        yield Completion(
            **meta._asdict(),
            usage=None,
            choices=[CompletionChoice(index=index, text=event.text, logprobs=logprobs, finish_reason=finish)],
        )

    def tail() -> Iterator[Completion]:
        if include_usage:
            yield Completion(**meta._asdict(), choices=[], usage=job.usage())

    return sse_response(job, keepalive, render, openai=True, tail=tail)


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


@post(
    "/v1/chat/completions",
    summary="OpenAI-compatible chat completion",
    tags=["openai"],
    status_code=200,
    responses=error_responses(400, 401, 404, 413, 429, 500, 503),
)
async def chat_completions(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    context: NamedDependency[RequestContext],
    data: JSONBody[ChatCompletionRequest],
) -> Response[Any] | ServerSentEvent:
    gateway.check_model(data.model)
    _refuse_unsupported(data)
    engine = gateway.require_engine()
    top = data.top_logprobs or 0
    if top and not data.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    plan = tools.plan(data.tools, data.tool_choice, data.parallel_tool_calls)
    if gateway.settings.log_prompts:
        context.log["prompt"] = to_template_messages(data.messages)
    prompt_ids = tools.chat_prompt_ids(engine.tokenizer, data.messages, plan)
    fmt = data.response_format
    grammar = await tools.output_grammar(
        engine,
        gateway.metrics,
        plan,
        structured.response_format_grammar(fmt),
        structured.format_label(fmt),
        "response_format",
    )
    bias = structured.logit_bias(data.logit_bias, engine.manifest.model.vocab_size)
    job = generation.start(
        context,
        gateway,
        prompt_ids,
        data,
        max_new_tokens=data.max_completion_tokens or data.max_tokens,
        min_new_tokens=data.min_tokens,
        n=data.n,
        logprobs=data.logprobs,
        top_logprobs=top,
        grammar=grammar,
        logit_bias=bias,
    )
    meta = Meta.new("chatcmpl", gateway)
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    if data.stream:
        return _chat_stream(job, engine, meta, include_usage, gateway.settings.sse_keepalive, plan)
    await generation.collect(job, request)
    choices = []
    for c in job.choices:
        content, calls, finish = tools.answer(c.text, c.finish_reason, plan)
        choices.append(
            ChatChoice(
                index=c.index,
                message=AssistantMessage(role="assistant", content=content, tool_calls=calls),
                finish_reason=finish,
                logprobs=ChatLogprobs(_chat_logprobs(engine, c.logprobs)) if data.logprobs else None,
            )
        )
    return Response(ChatCompletion(**meta._asdict(), choices=choices, usage=job.usage()))


def _chat_stream(
    job: Job, engine: Engine, meta: Meta, include_usage: bool, keepalive: float, plan: tools.ToolPlan
) -> ServerSentEvent:
    parsers = [tools.ToolCallParser() for _ in job.choices] if plan.active else None

    def chunk(
        index: int, delta: ChatDelta, finish: FinishReason | None, logprobs: ChatLogprobs | None = None
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            **meta._asdict(),
            choices=[ChatChunkChoice(index=index, delta=delta, logprobs=logprobs, finish_reason=finish)],
        )

    def render(index: int, event: TokenEvent) -> Iterator[ChatCompletionChunk]:
        logprobs = ChatLogprobs(_chat_logprobs(engine, event.logprobs)) if event.logprobs else None
        text, calls, finish = event.text, [], job.choices[index].finish_reason
        if parsers is not None:  # tools on: call syntax becomes delta.tool_calls
            text, calls = tools.stream_pieces(parsers[index], event.text, event.finished)
            finish = tools.finish_with(parsers[index].calls, finish)
        if text or logprobs is not None:
            yield chunk(index, ChatDelta(content=text), None, logprobs)
        if calls:
            yield chunk(index, ChatDelta(tool_calls=calls), None)
        if event.finished:
            yield chunk(index, ChatDelta(), finish)

    def tail() -> Iterator[ChatCompletionChunk]:
        if include_usage:
            yield ChatCompletionChunk(**meta._asdict(), choices=[], usage=job.usage())

    head = [chunk(c.index, ChatDelta(role="assistant", content=""), None) for c in job.choices]
    return sse_response(job, keepalive, render, openai=True, head=head, tail=tail)


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
