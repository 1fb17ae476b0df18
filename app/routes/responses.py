"""POST /v1/responses, GET and DELETE /v1/responses/{id}: the OpenAI Responses API on the chat path."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Response, ServerSentEvent

from app import generation
from app import response_items as items
from app.engine.request import TokenEvent
from app.errors import ApiError
from app.generation import Job
from app.middleware import RequestContext
from app.response_items import Status
from app.responses import ResponseStore, owner_of
from app.schemas import error_responses
from app.schemas_responses import (
    InputItemList,
    InputMessageItem,
    OutputMessage,
    OutputText,
    ResponseDeleted,
    ResponseEvent,
    ResponseObject,
    ResponseRequest,
)
from app.sse import sse_response
from app.state import Gateway


@dataclass
class Run:
    """One response being generated: what it will be stored as, and where."""

    response: ResponseObject
    message_id: str
    conversation: list[dict[str, Any]]  # the chain so far plus this input, as template messages
    input_items: list[InputMessageItem]
    owner: str | None
    store: ResponseStore | None  # None: store: false

    def finish(self, job: Job) -> ResponseObject:
        choice = job.choices[0]
        usage = items.usage(job.prompt_tokens, len(choice.token_ids))
        response = items.finish(self.response, self.message_id, choice.text, choice.finish_reason, usage, choice.error)
        if self.store is not None:
            conversation = [*self.conversation, *items.output_messages(response.output)]
            self.store.put(response, conversation, self.owner, self.input_items)
        return response


@post(
    "/v1/responses",
    summary="OpenAI Responses API: create a model response",
    tags=["openai"],
    status_code=200,
    responses=error_responses(400, 401, 404, 413, 429, 500, 503),
)
async def create_response(
    request: Request[Any, Any, Any], gateway: Gateway, context: RequestContext, data: JSONBody[ResponseRequest]
) -> Response[Any] | ServerSentEvent:
    gateway.check_model(data.model)
    items.refuse_unsupported(data)
    engine = gateway.require_engine()
    owner = owner_of(request.headers, gateway.settings)
    history = []
    if data.previous_response_id:
        history = gateway.responses.get(data.previous_response_id, owner, "previous_response_id").conversation
    new, listed = items.input_messages(data.input), items.listed_items(data.input)
    messages = items.prompt_messages(data.instructions, history, new)
    if gateway.settings.log_prompts:
        context.log["prompt"] = messages
    job = _start(context, gateway, engine.tokenizer.encode_chat(messages), data)
    response = items.skeleton(items.new_id("resp"), int(time.time()), gateway.model_id, data)
    store = gateway.responses if data.store else None
    run = Run(response, items.new_id("msg"), [*history, *new], listed, owner, store)
    if data.stream:
        return _stream(job, run, gateway.settings.sse_keepalive)
    await generation.collect(job, request)
    return Response(run.finish(job))


@get(
    "/v1/responses/{response_id:str}",
    summary="A stored response",
    tags=["openai"],
    responses=error_responses(401, 404),
)
async def retrieve_response(
    request: Request[Any, Any, Any], gateway: Gateway, response_id: FromPath[str]
) -> ResponseObject:
    owner = owner_of(request.headers, gateway.settings)
    return gateway.responses.get(response_id, owner, "response_id").response


@delete(
    "/v1/responses/{response_id:str}",
    summary="Delete a stored response",
    tags=["openai"],
    status_code=200,
    responses=error_responses(401, 404),
)
async def delete_response(
    request: Request[Any, Any, Any], gateway: Gateway, response_id: FromPath[str]
) -> ResponseDeleted:
    gateway.responses.delete(response_id, owner_of(request.headers, gateway.settings))
    return ResponseDeleted(id=response_id)


@get(
    "/v1/responses/{response_id:str}/input_items",
    summary="The input items of a stored response",
    tags=["openai"],
    responses=error_responses(400, 401, 404),
)
async def list_input_items(
    request: Request[Any, Any, Any],
    gateway: Gateway,
    response_id: FromPath[str],
    limit: Annotated[int, Parameter(ge=1, le=100, description="Items per page.")] = 20,
    order: Annotated[Literal["asc", "desc"], Parameter(description="Oldest first (asc) or newest first.")] = "desc",
    after: Annotated[str | None, Parameter(description="List the items after this item id.")] = None,
) -> InputItemList:
    owner = owner_of(request.headers, gateway.settings)
    return gateway.responses.get(response_id, owner, "response_id").page(limit, order, after)


ROUTES = [create_response, retrieve_response, delete_response, list_input_items]


def _start(context: RequestContext, gateway: Gateway, prompt_ids: list[int], data: ResponseRequest) -> Job:
    try:
        return generation.start(
            context, gateway, prompt_ids, data, max_new_tokens=data.max_output_tokens, min_new_tokens=0
        )
    except ApiError as exc:
        if exc.param == "prompt":  # the engine names its own field; here the prompt is `input`
            exc.param = "input"
        raise


def _stream(job: Job, run: Run, keepalive: float) -> ServerSentEvent:
    """The typed event sequence of a streamed response, numbered from 0; `type` doubles as the SSE event name."""
    numbers = itertools.count()

    def event(kind: str, **fields: Any) -> ResponseEvent:
        return ResponseEvent(type=kind, sequence_number=next(numbers), **fields)

    where = {"item_id": run.message_id, "output_index": 0, "content_index": 0}
    item = OutputMessage(id=run.message_id, status=Status.IN_PROGRESS, content=[])
    head = [
        event("response.created", response=run.response),
        event("response.in_progress", response=run.response),
        event("response.output_item.added", output_index=0, item=item),
        event("response.content_part.added", **where, part=OutputText(text="")),
    ]

    def render(index: int, token: TokenEvent) -> Iterator[ResponseEvent]:
        if token.text:
            yield event("response.output_text.delta", **where, delta=token.text, logprobs=[])

    def tail() -> Iterator[ResponseEvent]:
        response = run.finish(job)
        if response.status in (Status.FAILED, Status.CANCELLED):
            message = response.error.message if response.error else "the generation was cancelled"
            yield event("error", code="server_error", message=message, param=None)
            yield event("response.failed", response=response)
            return
        text = response.output[0].content[0].text
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=response.output[0].content[0])
        yield event("response.output_item.done", output_index=0, item=response.output[0])
        final = "response.completed" if response.status is Status.COMPLETED else "response.incomplete"
        yield event(final, response=response)

    # an engine failure ends the stream like any failed generation: `error`, then `response.failed`
    return sse_response(job, keepalive, render, openai=False, head=head, tail=tail, failed=lambda _: tail(), named=True)
