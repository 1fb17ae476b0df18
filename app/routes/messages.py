"""Chat messages from the wire to the dicts a chat template expects."""

from __future__ import annotations

import json
from typing import Any

from app.errors import ApiError
from app.schemas import ChatMessage, ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"  # the generic call syntax (see app/tools.py)


def to_template_messages(messages: list[ChatMessage], native_tools: bool = False) -> list[dict[str, Any]]:
    """`native_tools`: the chat template renders tool calls and results itself (else they are written as text)."""
    out = []
    for i, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text" or part.text is None:
                    raise ApiError(
                        400,
                        f"messages[{i}].content: only text parts are supported, got {part.type!r}",
                        param=f"messages[{i}].content",
                    )
                texts.append(part.text)
            content = "".join(texts)
        if message.tool_calls or message.tool_call_id is not None:
            out.append(
                history_message(message.role, content or "", message.tool_calls, message.tool_call_id, native_tools)
            )
        else:
            out.append({"role": message.role, "content": content or ""})
    return out


def history_message(role: str, content: str, calls: list[ToolCall] | None, call_id: str | None, native: bool):
    """One wire message for the template: structured for tool-aware templates, call syntax otherwise."""
    if native:
        out: dict[str, Any] = {"role": role, "content": content}
        if calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": _loads(c)}}
                for c in calls
            ]
        if call_id is not None:
            out["tool_call_id"] = call_id
        return out
    if calls:
        written = "\n".join(
            f'{OPEN}{{"name": "{c.function.name}", "arguments": {c.function.arguments}}}{CLOSE}' for c in calls
        )
        content = f"{content}\n{written}" if content else written
    return {"role": role, "content": content}


def _loads(call: ToolCall) -> Any:
    try:
        return json.loads(call.function.arguments)
    except json.JSONDecodeError:
        return call.function.arguments
