"""The load generator: streaming OpenAI clients against the served model (SSE, `data: [DONE]` at the end).

Chat prompts go to /v1/chat/completions, plain ones to /v1/completions; `ignore_eos` (a vLLM-style
extra field) makes every request decode exactly max_tokens. A token's time is when the SSE chunk
carrying its text arrived; a role-only first chunk does not count as the first token.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.promptset import Prompt
from benchmarks.timing import StreamTiming


class HttpBenchError(Exception):
    """A request failed or its stream broke the OpenAI framing."""


@dataclass(frozen=True, slots=True)
class StreamResult:
    timing: StreamTiming
    prompt_tokens: int | None  # as the server counted them (usage), when it reports usage


def request_body(prompt: Prompt, model: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    if prompt.style == "chat":
        return "/v1/chat/completions", {**body, "messages": prompt.messages}
    return "/v1/completions", {**body, "prompt": prompt.text}


def chunk_text(chunk: dict[str, Any]) -> str:
    """The generated text an OpenAI stream chunk carries (chat delta or completion text), else ""."""
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return (choice["delta"] or {}).get("content") or ""
    return choice.get("text") or ""


async def stream_one(
    client: httpx.AsyncClient, prompt: Prompt, model: str, max_tokens: int, start: float | None = None
) -> StreamResult:
    """One streamed request; times are relative to `start` (default: now)."""
    route, body = request_body(prompt, model, max_tokens)
    start = time.perf_counter() if start is None else start
    times: list[float] = []
    usage: dict[str, Any] | None = None
    done = False
    async with client.stream("POST", route, json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")[:500]
            raise HttpBenchError(f"POST {route} -> HTTP {response.status_code}: {text}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, SSE comments (keep-alives), event: lines
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise HttpBenchError(f"POST {route}: error in stream: {chunk['error']}")
            if chunk_text(chunk):
                times.append(time.perf_counter() - start)
            usage = chunk.get("usage") or usage
    if not done:
        raise HttpBenchError(f"POST {route}: the stream ended without `data: [DONE]`")
    tokens = int(usage["completion_tokens"]) if usage else len(times)
    prompt_tokens = int(usage["prompt_tokens"]) if usage else None
    return StreamResult(StreamTiming(prompt.id, tuple(times), tokens), prompt_tokens)


async def burst(
    client: httpx.AsyncClient, prompt: Prompt, model: str, clients: int, max_tokens: int
) -> tuple[list[StreamResult], float]:
    """`clients` streaming requests sent at once; their results and the wall time to the last token."""
    start = time.perf_counter()
    results = await asyncio.gather(*(stream_one(client, prompt, model, max_tokens, start) for _ in range(clients)))
    return list(results), max(r.timing.end for r in results)


def make_client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0, connect=10.0))


async def served_model(client: httpx.AsyncClient) -> str:
    response = await client.get("/v1/models")
    if response.status_code != 200:
        raise HttpBenchError(f"GET /v1/models -> HTTP {response.status_code}")
    models = response.json().get("data") or []
    if not models:
        raise HttpBenchError("GET /v1/models lists no model")
    return str(models[0]["id"])
