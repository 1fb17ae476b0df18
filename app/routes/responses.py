"""POST /v1/responses, GET and DELETE /v1/responses/{id}: the OpenAI Responses API on the chat path."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Response, ServerSentEvent

from app import generation, structured, tools
from app import response_items as items
from app.engine.params import Grammar
from app.engine.request import TokenEvent
from app.errors import ApiError
from app.generation import Job
from app.middleware import RequestContext
from app.response_items import Status
from app.responses import ResponseStore, owner_of
from app.schemas import ChatMessage, ToolCall, error_responses
from app.schemas_responses import (
    FunctionCallItem,
    InputItemList,
    ListedItem,
    OutputItem,
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
    conversation: list[dict[str, Any]]  # the chain so far plus this input, as chat-wire messages
    input_items: list[ListedItem]
    owner: str | None
    store: ResponseStore | None  # None: store: false
    plan: tools.ToolPlan

    def finish(self, job: Job, parsed: tuple[str | None, list[ToolCall]] | None = None) -> ResponseObject:
        """`parsed`: the streamed answer's (content, calls), as its parser saw them; else the text is parsed here."""
        choice = job.choices[0]
        if parsed is None:
            content, calls, finish = tools.answer(choice.text, choice.finish_reason, self.plan)
        else:
            content, calls, finish = *parsed, tools.finish_with(parsed[1], choice.finish_reason)
        usage = items.usage(job.prompt_tokens, len(choice.token_ids), job.cached_tokens)
        response = items.finish(self.response, self.message_id, content, finish, usage, choice.error, calls=calls or ())
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
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    context: NamedDependency[RequestContext],
    data: JSONBody[ResponseRequest],
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
    plan = tools.plan(items.chat_tools(data.tools), items.chat_tool_choice(data.tool_choice), data.parallel_tool_calls)
    fmt = data.text.format if data.text else None
    grammar = await tools.output_grammar(
        engine,
        gateway.metrics,
        plan,
        structured.text_format_grammar(fmt),
        structured.format_label(fmt),
        "text.format",
    )
    prompt_ids = tools.chat_prompt_ids(engine.tokenizer, msgspec.convert(messages, list[ChatMessage]), plan)
    job = _start(context, gateway, prompt_ids, data, grammar)
    response = items.skeleton(items.new_id("resp"), int(time.time()), gateway.model_id, data)
    store = gateway.responses if data.store else None
    run = Run(response, items.new_id("msg"), [*history, *new], listed, owner, store, plan)
    if data.stream:
        if plan.active:
            return _tool_stream(job, run, gateway.settings.sse_keepalive)
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
    request: Request[Any, Any, Any], gateway: NamedDependency[Gateway], response_id: FromPath[str]
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
    request: Request[Any, Any, Any], gateway: NamedDependency[Gateway], response_id: FromPath[str]
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
    gateway: NamedDependency[Gateway],
    response_id: FromPath[str],
    limit: Annotated[int, Parameter(ge=1, le=100, description="Items per page.")] = 20,
    order: Annotated[Literal["asc", "desc"], Parameter(description="Oldest first (asc) or newest first.")] = "desc",
    after: Annotated[str | None, Parameter(description="List the items after this item id.")] = None,
) -> InputItemList:
    owner = owner_of(request.headers, gateway.settings)
    return gateway.responses.get(response_id, owner, "response_id").page(limit, order, after)


ROUTES = [create_response, retrieve_response, delete_response, list_input_items]


def _start(
    context: RequestContext, gateway: Gateway, prompt_ids: list[int], data: ResponseRequest, grammar: Grammar | None
) -> Job:
    try:
        return generation.start(
            context,
            gateway,
            prompt_ids,
            data,
            max_new_tokens=data.max_output_tokens,
            min_new_tokens=0,
            grammar=grammar,
        )
    except ApiError as exc:
        if exc.param == "prompt":  # the engine names its own field; here the prompt is `input`
            exc.param = "input"
        raise


def _numbered() -> Callable[..., ResponseEvent]:
    numbers = itertools.count()

    def event(kind: str, **fields: Any) -> ResponseEvent:
        return ResponseEvent(type=kind, sequence_number=next(numbers), **fields)

    return event


def _failed(event: Callable[..., ResponseEvent], response: ResponseObject) -> Iterator[ResponseEvent]:
    message = response.error.message if response.error else "the generation was cancelled"
    yield event("error", code="server_error", message=message, param=None)
    yield event("response.failed", response=response)


def _stream(job: Job, run: Run, keepalive: float) -> ServerSentEvent:
    """The typed event sequence of a streamed response, numbered from 0; `type` doubles as the SSE event name."""
    event = _numbered()

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
            yield from _failed(event, response)
            return
        text = response.output[0].content[0].text
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=response.output[0].content[0])
        yield event("response.output_item.done", output_index=0, item=response.output[0])
        final = "response.completed" if response.status is Status.COMPLETED else "response.incomplete"
        yield event(final, response=response)

    # an engine failure ends the stream like any failed generation: `error`, then `response.failed`
    return sse_response(job, keepalive, render, openai=False, head=head, tail=tail, failed=lambda _: tail(), named=True)


def _tool_stream(job: Job, run: Run, keepalive: float) -> ServerSentEvent:
    """A streamed response with tools on: a message item for any text, then one function_call item per call
    (output_item.added, function_call_arguments.delta ..., .done, output_item.done), item after item."""
    event = _numbered()
    parser = tools.ToolCallParser()
    stream = _ItemStream(event, run.message_id)
    head = [event("response.created", response=run.response), event("response.in_progress", response=run.response)]

    def render(index: int, token: TokenEvent) -> Iterator[ResponseEvent]:
        text, deltas = tools.stream_pieces(parser, token.text, token.finished)
        if text:
            yield from stream.text(text)
        for delta in deltas:
            if delta.id is not None and delta.function is not None and delta.function.name is not None:
                yield from stream.call(delta.id, delta.function.name)
            if delta.function is not None and delta.function.arguments:
                yield from stream.arguments(delta.function.arguments)

    def tail() -> Iterator[ResponseEvent]:
        content = (stream.content or None) if parser.calls else stream.content  # as tools.parse_whole has it
        response = run.finish(job, (content, parser.calls))
        if response.status in (Status.FAILED, Status.CANCELLED):
            yield from _failed(event, response)
            return
        yield from stream.finish(response.output)
        final = "response.completed" if response.status is Status.COMPLETED else "response.incomplete"
        yield event(final, response=response)

    return sse_response(job, keepalive, render, openai=False, head=head, tail=tail, failed=lambda _: tail(), named=True)


class _ItemStream:
    """The output items of a tool-enabled stream as they open, fill and close; the open one is the last."""

    def __init__(self, event: Callable[..., ResponseEvent], message_id: str) -> None:
        self.event = event
        self.message_id = message_id
        self.ids: list[str] = []  # item ids by output_index
        self.closed: set[str] = set()
        self.content = ""  # the message's text so far
        self.open_call: FunctionCallItem | None = None  # the open call (None: the message or nothing is open)

    def _where(self, item_id: str) -> dict[str, Any]:
        return {"item_id": item_id, "output_index": self.ids.index(item_id)}

    def _added(self, item: OutputItem) -> Iterator[ResponseEvent]:
        self.ids.append(item.id)
        yield self.event("response.output_item.added", output_index=len(self.ids) - 1, item=item)
        if isinstance(item, OutputMessage):
            part = OutputText(text="")
            yield self.event("response.content_part.added", **self._where(item.id), content_index=0, part=part)

    def text(self, delta: str) -> Iterator[ResponseEvent]:
        if not self.ids:  # text only comes first: the call grammar allows nothing after the calls
            yield from self._added(OutputMessage(id=self.message_id, status=Status.IN_PROGRESS, content=[]))
        self.content += delta
        where = self._where(self.message_id)
        yield self.event("response.output_text.delta", **where, content_index=0, delta=delta, logprobs=[])

    def call(self, call_id: str, name: str) -> Iterator[ResponseEvent]:
        if self.ids and self.ids[-1] not in self.closed:  # the message or the previous call is complete
            yield from self.close(self._completed())
        self.open_call = FunctionCallItem(
            id=items.call_item_id(call_id), call_id=call_id, name=name, arguments="", status=Status.IN_PROGRESS
        )
        yield from self._added(msgspec.structs.replace(self.open_call))

    def arguments(self, delta: str) -> Iterator[ResponseEvent]:
        if self.open_call is None:
            return
        self.open_call.arguments += delta
        yield self.event("response.function_call_arguments.delta", **self._where(self.open_call.id), delta=delta)

    def _completed(self) -> OutputItem:
        if self.open_call is not None:
            return msgspec.structs.replace(self.open_call, status=Status.COMPLETED)
        return OutputMessage(id=self.message_id, status=Status.COMPLETED, content=[OutputText(text=self.content)])

    def close(self, item: OutputItem) -> Iterator[ResponseEvent]:
        self.closed.add(item.id)
        where = self._where(item.id)
        if isinstance(item, OutputMessage):
            part = item.content[0]
            yield self.event("response.output_text.done", **where, content_index=0, text=part.text, logprobs=[])
            yield self.event("response.content_part.done", **where, content_index=0, part=part)
        else:
            yield self.event("response.function_call_arguments.done", **where, arguments=item.arguments)
        yield self.event("response.output_item.done", output_index=where["output_index"], item=item)

    def finish(self, output: list[OutputItem]) -> Iterator[ResponseEvent]:
        """Close what is open with the final items; an item never streamed (an empty answer) opens first."""
        for item in output:
            if item.id not in self.ids:
                yield from self._added(item)
            if item.id not in self.closed:
                yield from self.close(item)
