"""Chat messages from the wire to the dicts a chat template expects."""

from __future__ import annotations

from typing import Any

from app.errors import ApiError
from app.schemas import ChatMessage


def to_template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
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
        out.append({"role": message.role, "content": content or ""})
    return out
