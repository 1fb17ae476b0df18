"""Real servers for the HTTP tests: `llm-gateway serve` in a subprocess on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.browser import browser, open_page  # noqa: F401 (fixtures of the page tests)
from tests.conftest import CLI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = (log_dir or Path("/tmp")) / f"server-{self.port}.log"
        merged = {**os.environ, "LLM_GATEWAY_THREADS": "2", **(env or {})}
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [CLI, "serve", "--model", str(model), "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=merged,
        )

    def wait_ready(self, timeout: float = 120.0, expect: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=2).status_code == expect:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {name{labels}: value}, parsed with prometheus_client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples


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
