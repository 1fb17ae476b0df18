"""Real servers for the HTTP tests: `llm-gateway serve` in a subprocess on a loopback port."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.server import ServeProcess, free_port
from tests.api.browser import browser, open_page  # noqa: F401 (fixtures of the page tests)
from tests.conftest import CLI

__all__ = ["Server", "free_port", "sse_frames", "stream_frames"]


class Server(ServeProcess):
    """`llm-gateway serve` (the console script) with this environment, LLM_GATEWAY_THREADS=2 and `env` on top;
    wait_ready, stop, log_lines and metrics come from the helper the bench uses too."""

    def __init__(self, model: Path, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        merged = {**os.environ, "LLM_GATEWAY_THREADS": "2", **(env or {})}
        super().__init__(model, merged, log_dir or Path("/tmp"), serve=(CLI, "serve"))


@pytest.fixture(scope="session")
def server(real_models, tmp_path_factory) -> Iterator[Server]:
    """The default model behind a default-configured server, for the whole session."""
    srv = Server(real_models.default, log_dir=tmp_path_factory.mktemp("server-logs"))
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(real_models, tmp_path) -> Iterator:
    """Start extra servers with their own settings; stopped at the end of the test."""
    started: list[Server] = []

    def start(env: dict[str, str] | None = None, model: Path | None = None, ready: bool = True) -> Server:
        srv = Server(model or real_models.default, env=env, log_dir=tmp_path)
        started.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in started:
        srv.stop(signal.SIGKILL)


def sse_frames(lines: Iterator[str]) -> list[dict]:
    """Parse an SSE body into frames {event, data, comment}; data stays a string."""
    frames, current = [], {}
    for line in lines:
        if line == "":
            if current:
                frames.append(current)
            current = {}
        elif line.startswith(":"):
            frames.append({"comment": line[1:].strip()})
        else:
            key, _, value = line.partition(":")
            current[key] = value[1:] if value.startswith(" ") else value
    if current:
        frames.append(current)
    return frames


def stream_frames(url: str, body: dict, headers: dict | None = None) -> tuple[httpx.Response, list[dict]]:
    """POST `body` and read the whole SSE answer as frames."""
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as resp:
        frames = sse_frames(resp.iter_lines())
    return resp, frames
