"""Server-Sent Events framing and the streaming response around it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.response import Stream

from app.schemas import encode

KEEPALIVE_FRAME = b": keep-alive\n\n"
DONE_FRAME = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(payload: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + encode(payload) + b"\n\n"


def sse_response(frames: AsyncIterator[bytes]) -> Stream:
    return Stream(frames, media_type="text/event-stream", headers=HEADERS)
