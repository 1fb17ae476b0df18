"""Responses API items to chat-template messages and back, and the response object a generation ends in.

Input items convert through `INPUT_ITEMS`, one function per item type, to chat-wire messages (the shape of
`app.schemas.ChatMessage`: function calls as assistant `tool_calls`, their outputs as `tool` messages), so
the chat path's tool handling (app/tools.py) renders them for either kind of chat template. Output items
(a message and/or function calls) come from `output_items`.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from app.engine.stopping import FinishReason
from app.errors import ApiError
from app.schemas import FunctionDefinition, FunctionName, NamedToolChoice, Tool, ToolCall
from app.schemas_responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    IncompleteDetails,
    InputItem,
    InputMessageItem,
    InputTokensDetails,
    ItemPart,
    ListedItem,
    OutputItem,
    OutputMessage,
    OutputText,
    ResponseError,
    ResponseObject,
    ResponseRequest,
    ResponseUsage,
    TextFormat,
    ToolChoiceFunction,
)

ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
TEXT = TextFormat(type="text")


class Status(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    CANCELLED = "cancelled"


# the one table from the generation's finish reason to a response's status and incomplete reason
FINISHED = {
    FinishReason.STOP: (Status.COMPLETED, None),
    FinishReason.TOOL_CALLS: (Status.COMPLETED, None),  # function_call items (app/tools.py)
    FinishReason.LENGTH: (Status.INCOMPLETE, "max_output_tokens"),
    FinishReason.ABORT: (Status.CANCELLED, None),
    FinishReason.TIMEOUT: (Status.FAILED, None),
    FinishReason.ERROR: (Status.FAILED, None),
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def refuse_unsupported(data: ResponseRequest) -> None:
    """400 naming the field for what this server cannot honour."""
    if data.background:
        raise ApiError(400, "background responses are not supported", param="background")
    if data.truncation not in (None, "disabled"):
        raise ApiError(400, "only truncation: disabled is supported (a too-long input is a 400)", param="truncation")


# -- input items -> template messages -------------------------------------------------------------------


def _text_of(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if part.type not in TEXT_PARTS or part.text is None:
            raise ApiError(
                400,
                f"{param}[{j}]: content part type {part.type!r} is not supported (only input_text and output_text)",
                param=f"{param}[{j}]",
            )
        texts.append(part.text)
    return "".join(texts)


def _message(item: InputItem, param: str) -> dict[str, Any]:
    role = ROLES.get(item.role or "")
    if role is None:
        raise ApiError(
            400, f"{param}.role: {item.role!r} is not one of user, system, developer, assistant", param=f"{param}.role"
        )
    return {"role": role, "content": _text_of(item.content, f"{param}.content")}


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _required(item: InputItem, param: str, *fields: str) -> None:
    for name in fields:
        if getattr(item, name) is None:
            raise ApiError(400, f"{param}: a {item.type} item needs {name}", param=f"{param}.{name}")


def _function_call(item: InputItem, param: str) -> dict[str, Any]:
    _required(item, param, "call_id", "name", "arguments")
    return {"role": "assistant", "content": "", "tool_calls": [_tool_call(item.call_id, item.name, item.arguments)]}  # type: ignore[arg-type]


def _function_call_output(item: InputItem, param: str) -> dict[str, Any]:
    _required(item, param, "call_id", "output")
    return {"role": "tool", "content": output_text(item.output), "tool_call_id": item.call_id}


def output_text(output: Any) -> str:
    """A function_call_output's `output` as text: a string as is, text parts joined, anything else as JSON."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in output):
        return "".join(p["text"] for p in output)
    return json.dumps(output, ensure_ascii=False)


INPUT_ITEMS: dict[str, Callable[[InputItem, str], dict[str, Any]]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
}


def input_messages(value: str | list[InputItem], param: str = "input") -> list[dict[str, Any]]:
    """`input` as template messages; a 400 naming `input[i]` for an item type not in INPUT_ITEMS."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    out = []
    for i, item in enumerate(value):
        convert = INPUT_ITEMS.get(item.type)
        if convert is None:
            raise ApiError(
                400,
                f"{param}[{i}].type: input items of type {item.type!r} are not supported "
                f"(supported: {', '.join(sorted(INPUT_ITEMS))})",
                param=f"{param}[{i}].type",
            )
        message = convert(item, f"{param}[{i}]")
        if "tool_calls" in message and out and out[-1]["role"] == "assistant":  # parallel calls: one turn
            out[-1].setdefault("tool_calls", []).extend(message["tool_calls"])
        else:
            out.append(message)
    if not out:
        raise ApiError(400, f"{param}: give at least one item", param=param)
    return out


def listed_items(value: str | list[InputItem]) -> list[ListedItem]:
    """`input` (already checked by input_messages) as the items GET .../input_items lists, with new ids."""
    if isinstance(value, str):
        value = [InputItem(role="user", content=value)]
    out: list[ListedItem] = []
    for i, item in enumerate(value):
        if item.type == "function_call":
            out.append(
                FunctionCallItem(
                    id=item.id or new_id("fc"),
                    call_id=item.call_id or "",
                    name=item.name or "",
                    arguments=item.arguments or "",
                    status="completed",
                )
            )
            continue
        if item.type == "function_call_output":
            out.append(
                FunctionCallOutputItem(
                    id=item.id or new_id("fco"), call_id=item.call_id or "", output=output_text(item.output)
                )
            )
            continue
        assistant = item.role == "assistant"
        part = ItemPart(
            type="output_text" if assistant else "input_text",
            text=_text_of(item.content, f"input[{i}].content"),
            annotations=[] if assistant else None,
        )
        out.append(InputMessageItem(id=new_id("msg"), role=item.role or "user", content=[part]))
    return out


def prompt_messages(
    instructions: str | None, history: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What the chat template renders: the instructions as a system message, the chained conversation, the input."""
    head = [{"role": "system", "content": instructions}] if instructions else []
    return [*head, *history, *new]


# -- generation -> output items and the response ----------------------------------------------------


def chat_tools(tools: list[FunctionTool] | None) -> list[Tool] | None:
    """The Responses API's flat function tools as the chat route's tools (400 for other tool types)."""
    out = []
    for i, t in enumerate(tools or []):
        if t.type != "function":
            raise ApiError(
                400, f"tools[{i}].type: only function tools are supported, got {t.type!r}", param=f"tools[{i}].type"
            )
        if t.name is None:
            raise ApiError(400, f"tools[{i}]: a function tool needs a name", param=f"tools[{i}].name")
        function = FunctionDefinition(name=t.name, description=t.description, parameters=t.parameters, strict=t.strict)
        out.append(Tool(function=function))
    return out or None


def chat_tool_choice(choice: str | ToolChoiceFunction | None) -> str | NamedToolChoice | None:
    if isinstance(choice, ToolChoiceFunction):
        return NamedToolChoice(function=FunctionName(name=choice.name))
    return choice


def call_item_id(call_id: str) -> str:
    """The function_call item's id (fc_...), derived from its call_id so a stream and its final response agree."""
    return "fc_" + call_id.removeprefix("call_")


def output_items(message_id: str, text: str | None, status: Status, calls: Sequence[ToolCall] = ()) -> list[OutputItem]:
    """A message (unless the answer is calls only), then one function_call item per call."""
    item_status = Status.COMPLETED if status is Status.COMPLETED else Status.INCOMPLETE
    out: list[OutputItem] = []
    if text is not None or not calls:
        out.append(OutputMessage(id=message_id, status=item_status, content=[OutputText(text=text or "")]))
    for call in calls:
        function = call.function
        out.append(
            FunctionCallItem(
                id=call_item_id(call.id),
                call_id=call.id,
                name=function.name,
                arguments=function.arguments,
                status=item_status,
            )
        )
    return out


def output_messages(items: list[OutputItem]) -> list[dict[str, Any]]:
    """Output items back to one assistant chat-wire message, for the next response in a chain."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(p.text for item in items if isinstance(item, OutputMessage) for p in item.content),
    }
    calls = [_tool_call(i.call_id, i.name, i.arguments) for i in items if isinstance(i, FunctionCallItem)]
    if calls:
        message["tool_calls"] = calls
    return [message]


def skeleton(response_id: str, created_at: int, model: str, data: ResponseRequest) -> ResponseObject:
    """The response as it starts: in progress, no output; the request's settings echoed."""
    return ResponseObject(
        id=response_id,
        created_at=created_at,
        model=model,
        status=Status.IN_PROGRESS,
        output=[],
        instructions=data.instructions,
        previous_response_id=data.previous_response_id,
        max_output_tokens=data.max_output_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        store=data.store,
        metadata=data.metadata or {},
        text={"format": msgspec.to_builtins(data.text.format if data.text and data.text.format else TEXT)},
        tools=[msgspec.to_builtins(t) for t in data.tools or []],
        tool_choice=_echo_choice(data),
        parallel_tool_calls=data.parallel_tool_calls,
        user=data.user,
    )


def _echo_choice(data: ResponseRequest) -> str | dict[str, Any]:
    if isinstance(data.tool_choice, ToolChoiceFunction):
        return msgspec.to_builtins(data.tool_choice)
    return data.tool_choice or ("auto" if data.tools else "none")


def finish(
    response: ResponseObject,
    message_id: str,
    text: str | None,
    finish_reason: FinishReason | None,
    usage: ResponseUsage,
    error: str | None = None,
    calls: Sequence[ToolCall] = (),
) -> ResponseObject:
    """Fill in status, output, usage and error from how the generation ended (in place, and returned);
    a generation that never finished counts as failed."""
    status, reason = FINISHED[finish_reason or FinishReason.ERROR]
    response.status = status
    response.output = output_items(message_id, text, status, calls)
    response.usage = usage
    response.incomplete_details = IncompleteDetails(reason) if status is Status.INCOMPLETE else None
    if status is Status.FAILED:
        message = error or (
            "the generation hit the server's request timeout" if finish_reason is FinishReason.TIMEOUT else ""
        )
        response.error = ResponseError(code="server_error", message=message or "the generation failed")
    if status is Status.COMPLETED:
        response.completed_at = int(time.time())
    return response


def usage(input_tokens: int, output_tokens: int, cached_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=cached_tokens),
    )
