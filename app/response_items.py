"""Responses API items to chat-template messages and back, and the response object a generation ends in.

Input items convert through `INPUT_ITEMS`, one function per item type; output items come from
`output_items`. Tools add `function_call` / `function_call_output` to the table and a function-call branch
to `output_items` once constrained decoding lands; nothing else here needs to change.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from typing import Any

from app.engine.stopping import FinishReason
from app.errors import ApiError
from app.schemas_responses import (
    IncompleteDetails,
    InputItem,
    InputMessageItem,
    ItemPart,
    OutputMessage,
    OutputText,
    ResponseError,
    ResponseObject,
    ResponseRequest,
    ResponseUsage,
)

ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


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
    """400 naming the field for what this server cannot honour yet."""
    fmt = (data.text.format or {}) if data.text else {}
    if fmt.get("type", "text") != "text":
        raise ApiError(
            400, f"text.format type {fmt.get('type')!r} is not supported yet (only text)", param="text.format"
        )
    if data.tools:
        raise ApiError(400, "tools are not supported by this server yet", param="tools")
    if data.tool_choice not in (None, "none", "auto"):
        raise ApiError(400, "tool_choice needs tools, which are not supported yet", param="tool_choice")
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


INPUT_ITEMS: dict[str, Callable[[InputItem, str], dict[str, Any]]] = {"message": _message}


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
        out.append(convert(item, f"{param}[{i}]"))
    if not out:
        raise ApiError(400, f"{param}: give at least one item", param=param)
    return out


def listed_items(value: str | list[InputItem]) -> list[InputMessageItem]:
    """`input` (already checked by input_messages) as the items GET .../input_items lists, with new ids."""
    if isinstance(value, str):
        value = [InputItem(role="user", content=value)]
    out = []
    for i, item in enumerate(value):
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


def output_items(message_id: str, text: str, status: Status) -> list[OutputMessage]:
    item_status = Status.COMPLETED if status is Status.COMPLETED else Status.INCOMPLETE
    return [OutputMessage(id=message_id, status=item_status, content=[OutputText(text=text)])]


def output_messages(items: list[OutputMessage]) -> list[dict[str, Any]]:
    """Output items back to template messages, for the next response in a chain."""
    return [{"role": "assistant", "content": "".join(p.text for p in item.content)} for item in items]


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
        tool_choice="none" if data.tool_choice in (None, "none") else str(data.tool_choice),
        parallel_tool_calls=bool(data.parallel_tool_calls),
        user=data.user,
    )


def finish(
    response: ResponseObject,
    message_id: str,
    text: str,
    finish_reason: FinishReason | None,
    usage: ResponseUsage,
    error: str | None = None,
) -> ResponseObject:
    """Fill in status, output, usage and error from how the generation ended (in place, and returned);
    a generation that never finished counts as failed."""
    status, reason = FINISHED[finish_reason or FinishReason.ERROR]
    response.status = status
    response.output = output_items(message_id, text, status)
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


def usage(input_tokens: int, output_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
    )
