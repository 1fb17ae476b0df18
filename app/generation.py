"""Between the wire and the engine: submit requests (n choices each), merge their event streams,
collect results, and cancel everything when the client goes away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from litestar import Request

from app.engine.engine import Engine, RequestStream
from app.engine.errors import EngineError
from app.engine.params import MAX_SEED, Grammar, SamplingParams
from app.engine.request import TokenEvent, TokenLogprob
from app.engine.stopping import FinishReason
from app.errors import ApiError, from_engine
from app.middleware import RequestContext
from app.schemas import PromptTokensDetails, Sampling, Timings, Usage
from app.state import Gateway

KEEPALIVE = None  # yielded by `merged` when nothing arrived for a while


def check_token_ids(engine: Engine, ids: list[int], param: str) -> None:
    """400 naming `param` when a token id lies outside the model's vocabulary."""
    vocab = engine.manifest.model.vocab_size
    bad = next((t for t in ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise ApiError(400, f"{param}: token id {bad} is outside the vocabulary [0, {vocab})", param=param)


@dataclass
class Choice:
    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None
    queue_s: float = 0.0
    ttft_s: float = 0.0
    total_s: float = 0.0
    cached_tokens: int = 0

    def add(self, event: TokenEvent) -> None:
        self.cached_tokens = event.usage.cached_tokens
        self.text += event.text
        self.token_ids += event.token_ids
        if event.logprobs:
            self.logprobs += event.logprobs
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason
            self.error = event.error
            if event.timings is not None:
                self.queue_s, self.ttft_s, self.total_s = (
                    event.timings.queue_s,
                    event.timings.ttft_s,
                    event.timings.total_s,
                )


@dataclass
class Job:
    """One HTTP request's generations: n engine sequences sharing one prompt."""

    streams: list[RequestStream]
    prompt_tokens: int
    choices: list[Choice]
    log: dict[str, Any]

    def usage(self) -> Usage:
        completion = sum(len(c.token_ids) for c in self.choices)
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=self.cached_tokens),
        )

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the prefix cache: the prompt is counted once, so the least of the choices."""
        return min(c.cached_tokens for c in self.choices)

    def timings(self) -> Timings:
        first = self.choices[0]
        generated = len(first.token_ids)
        decode_s = first.total_s - first.ttft_s
        rate = (generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0
        return Timings(
            queue_ms=round(first.queue_s * 1000, 2),
            time_to_first_token_ms=round(first.ttft_s * 1000, 2),
            total_ms=round(first.total_s * 1000, 2),
            tokens_per_second=round(rate, 2),
        )

    @property
    def error(self) -> str | None:
        return next((c.error for c in self.choices if c.error), None)

    def cancel(self) -> None:
        for stream in self.streams:
            stream.cancel()

    def finish_log(self) -> None:
        usage = self.usage()
        self.log.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=self.cached_tokens,
            ttft_ms=round(self.choices[0].ttft_s * 1000, 1),
            finish_reason=",".join(sorted({c.finish_reason or FinishReason.ABORT for c in self.choices})),
        )


def sampling_params(
    data: Sampling, *, max_new_tokens: int, min_new_tokens: int, logprobs: bool = False, top_logprobs: int = 0
) -> SamplingParams:
    """The sampling fields every generation route shares, read off its request Struct."""
    stop = (data.stop,) if isinstance(data.stop, str) else tuple(data.stop or ())
    return SamplingParams(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
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


def start(
    context: RequestContext,
    gateway: Gateway,
    prompt_ids: list[int],
    data: Sampling,
    *,
    max_new_tokens: int | None,
    min_new_tokens: int,
    n: int = 1,
    logprobs: bool = False,
    top_logprobs: int = 0,
    grammar: Grammar | None = None,
    logit_bias: tuple[tuple[int, float], ...] = (),
) -> Job:
    """Build the request's SamplingParams (the server's default length when it gave none) and submit it.
    A grammar must be compiled already (app.structured.compile_grammar), off the event loop."""
    engine = gateway.require_engine()
    settings = gateway.settings
    default_max = max(1, min(settings.default_max_tokens, engine.max_len - len(prompt_ids)))
    params = sampling_params(
        data,
        max_new_tokens=max_new_tokens or default_max,
        min_new_tokens=min_new_tokens,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    if grammar is not None or logit_bias:
        params = replace(params, grammar=grammar, logit_bias=logit_bias)
    salt = data.cache_salt or ""
    return submit(engine, prompt_ids, params, n, context.request_id, settings.request_timeout, context.log, salt)


def submit(
    engine: Engine,
    prompt_ids: list[int],
    params: SamplingParams,
    n: int,
    request_id: str,
    timeout_s: float,
    log: dict[str, Any],
    cache_salt: str = "",
) -> Job:
    """Queue n sequences (seed + i each, wrapping at MAX_SEED, when seeded); on any refusal, cancel what was queued."""
    deadline = time.monotonic() + timeout_s
    streams: list[RequestStream] = []
    try:
        for i in range(n):
            choice_params = params
            if n > 1 and params.seed is not None:
                choice_params = replace(params, seed=(params.seed + i) % (MAX_SEED + 1))
            streams.append(engine.submit(prompt_ids, choice_params, f"{request_id}-{i}", deadline, cache_salt))
    except EngineError as exc:
        for stream in streams:
            stream.cancel()
        raise from_engine(exc) from exc
    return Job(streams, len(prompt_ids), [Choice(i) for i in range(n)], log)


async def merged(job: Job, keepalive_s: float) -> AsyncIterator[tuple[int, TokenEvent] | None]:
    """(choice index, event) from all of a job's streams as they come; KEEPALIVE after keepalive_s of silence.

    Whoever stops iterating early (a client disconnect cancels the consumer) cancels every sequence.
    """
    queue: asyncio.Queue[tuple[int, TokenEvent] | BaseException] = asyncio.Queue()

    async def pump(index: int, stream: RequestStream) -> None:
        try:
            async for event in stream:
                queue.put_nowait((index, event))
        except BaseException as exc:
            queue.put_nowait(exc)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(job.streams)]
    open_streams = len(tasks)
    try:
        while open_streams:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=keepalive_s)
            except TimeoutError:
                yield KEEPALIVE
                continue
            if isinstance(item, BaseException):
                raise item
            index, event = item
            job.choices[index].add(event)
            if event.finished:
                open_streams -= 1
            yield index, event
    finally:
        job.cancel()
        for task in tasks:
            task.cancel()
        job.finish_log()


async def collect(job: Job, request: Request[Any, Any, Any]) -> Job:
    """Run a non-streamed job to the end; a client that hangs up cancels it."""

    async def drain() -> None:
        async for _ in merged(job, keepalive_s=3600.0):
            pass

    work = asyncio.create_task(drain())
    hangup = asyncio.create_task(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            raise ApiError(499, "the client closed the connection", code="client_closed")
        work.result()
    finally:
        hangup.cancel()
        if not work.done():
            work.cancel()
    if job.error and all(c.finish_reason is FinishReason.ERROR for c in job.choices):
        raise ApiError(500, job.error, code="engine_error")
    return job


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
