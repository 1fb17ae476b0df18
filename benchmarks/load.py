"""The HTTP contestant and the load on it: `llm-gateway serve` (benchmarks/server.py) driven by streaming
OpenAI clients from the bench process, /v1/health probed from a third process during the largest burst.

A load is a named Scenario: every client sends its turns one after another, all clients at once, against
a server whose environment adds the scenario's `env` to the bench's. A chat client keeps its conversation:
each turn goes out after the earlier turns and the replies they got. Chat prompts go to
/v1/chat/completions, plain ones to /v1/completions; `ignore_eos` (a vLLM-style extra field) makes every
request decode exactly max_tokens. A token's time is when the SSE chunk carrying its text arrived; a
role-only first chunk does not count as the first token.

The prober, `python -m benchmarks.load HOST PORT PATH INTERVAL MAX_SECONDS`, GETs PATH over one keep-alive
connection every INTERVAL seconds and times each answer, until its stdin closes (the parent is done) or
MAX_SECONDS pass; then it prints one JSON line {"latencies_s": [...], "errors": [...]}. A process of its
own, so that neither the load generator's event loop nor its GIL delays a probe and inflates the figure.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from app.config import PREFIX
from benchmarks.plan import EncodedPrompt, Plan, Prompt
from benchmarks.server import ServeProcess, spawn
from benchmarks.stats import Burst, StreamTiming


class HttpBenchError(Exception):
    """A request failed or its stream broke the OpenAI framing."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named HTTP load: clients[i] is the turns client i sends one after another; all clients start at
    once. `env` is added to the server's environment (a scenario with its own env needs its own server);
    `extra` is merged into every request body (e.g. a `response_format`)."""

    name: str
    clients: tuple[tuple[Prompt, ...], ...]  # [client][turn]
    env: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def burst_scenario(prompt: Prompt, clients: int, extra: Mapping[str, Any] | None = None) -> Scenario:
    """`clients` copies of one single-turn request sent at the same moment."""
    return Scenario(f"{clients} clients", ((prompt,),) * clients, extra=extra or {})


class StreamResult(msgspec.Struct, frozen=True):
    timing: StreamTiming
    prompt_tokens: int | None  # as the server counted them (usage), when it reports usage
    text: str = ""
    sent_s: float = 0.0  # when this request went out, from the scenario's start (its times count from here)
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, when the server reports it

    @property
    def end_s(self) -> float:
        """The last token, from the scenario's start."""
        return self.sent_s + self.timing.end


def server_env(threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for `llm-gateway serve`: this one without the user's LLM_GATEWAY_* settings, so that the
    server runs the same defaults as the in-process engine it is paired with (and no API keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return {**env, f"{PREFIX}THREADS": str(threads), **(extra or {})}


def request_body(
    prompt: Prompt, model: str, max_tokens: int, history: list[dict[str, str]] | None = None
) -> tuple[str, dict[str, Any]]:
    """The route and streaming body for one turn; `history` is a chat client's conversation so far.
    A "native" prompt goes to /v1/generate, which names its token limit max_new_tokens and serves one model."""
    if prompt.style == "native":
        body = {"prompt": prompt.text, "max_new_tokens": max_tokens, "temperature": 0, "stream": True}
        return "/v1/generate", {**body, "ignore_eos": True}
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    if prompt.style == "chat":
        messages = [*history, prompt.messages[-1]] if history else prompt.messages  # the system prompt once
        return "/v1/chat/completions", {**body, "messages": messages}
    return "/v1/completions", {**body, "prompt": prompt.text}


def chunk_text(chunk: dict[str, Any]) -> str:
    """The generated text a stream chunk carries (chat delta, completion text, /v1/generate text), else ""."""
    if "choices" not in chunk:
        return chunk.get("text") or ""  # a /v1/generate event
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return (choice["delta"] or {}).get("content") or ""
    return choice.get("text") or ""


async def stream_one(
    client: httpx.AsyncClient,
    prompt: Prompt,
    model: str,
    max_tokens: int,
    start: float | None = None,
    history: list[dict[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> StreamResult:
    """One streamed request; times are relative to `start` (default: now)."""
    route, body = request_body(prompt, model, max_tokens, history)
    body.update(extra or {})
    start = time.perf_counter() if start is None else start
    times: list[float] = []
    pieces: list[str] = []
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
            if text := chunk_text(chunk):
                times.append(time.perf_counter() - start)
                pieces.append(text)
            usage = chunk.get("usage") or usage
            if prompt.style == "native" and chunk.get("finish_reason"):
                done = True  # /v1/generate ends with its final event, not [DONE]
                break
    if not done:
        raise HttpBenchError(f"POST {route}: the stream ended without its final event")
    tokens = int(usage["completion_tokens"]) if usage else len(times)
    prompt_tokens = int(usage["prompt_tokens"]) if usage else None
    details = (usage or {}).get("prompt_tokens_details") or {}
    cached = int(details["cached_tokens"]) if "cached_tokens" in details else None
    timing = StreamTiming(prompt.id, tuple(times), tokens)
    return StreamResult(timing, prompt_tokens, "".join(pieces), cached_tokens=cached)


async def run_client(
    client: httpx.AsyncClient,
    turns: tuple[Prompt, ...],
    model: str,
    max_tokens: int,
    start: float,
    extra: Mapping[str, Any],
) -> list[StreamResult]:
    """One client's turns in order; a chat client sends each turn after the conversation so far. The first
    turn's times count from the scenario's start (all clients send at once), a later turn's from its send."""
    history: list[dict[str, str]] = []
    results = []
    for i, prompt in enumerate(turns):
        sent = start if i == 0 else time.perf_counter()
        result = await stream_one(client, prompt, model, max_tokens, sent, history, extra)
        result = msgspec.structs.replace(result, sent_s=sent - start)
        if prompt.style == "chat":
            history = [
                *(history or prompt.messages[:-1]),
                prompt.messages[-1],
                {"role": "assistant", "content": result.text},
            ]
        results.append(result)
    return results


async def run_scenario(
    client: httpx.AsyncClient, scenario: Scenario, model: str, max_tokens: int
) -> tuple[list[StreamResult], float]:
    """Every client of the scenario at once; all their results and the wall time to the last token."""
    start = time.perf_counter()
    per_client = await asyncio.gather(
        *(run_client(client, turns, model, max_tokens, start, scenario.extra) for turns in scenario.clients)
    )
    results = [r for client_results in per_client for r in client_results]
    return results, max(r.end_s for r in results)


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


class HttpService:
    """The runner's handle on the HTTP contestant: one `llm-gateway serve`, readiness polled from its start.
    A subclass drives another OpenAI-compatible server (`_attach` its process; `extra_body` and `describe`)."""

    extra_body: Mapping[str, Any] = {}  # merged into every request body

    def __init__(self, model_dir: Path, plan: Plan, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.extra_env = dict(env or {})
        self._attach(ServeProcess(model_dir, server_env(plan.threads, env), workdir / "logs"), plan)

    def _attach(self, server: ServeProcess, plan: Plan) -> None:
        self.plan = plan
        self.server = server
        # readiness is polled from the start, so the load time does not depend on when the runner asks
        self._ready: Future[float] = Future()
        threading.Thread(target=self._poll_ready, name="bench-ready", daemon=True).start()
        self.loop = asyncio.new_event_loop()
        self.client = make_client(self.server.url, max(*plan.levels, 32) + 4)  # 32: the scenarios' largest load
        self.model = ""
        self.prompt_token_mismatches: set[str] = set()

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def _poll_ready(self) -> None:
        try:
            self._ready.set_result(self.server.wait_ready(self.plan.load_timeout_s))
        except Exception as exc:
            self._ready.set_exception(exc)

    def ready(self) -> float:
        seconds = self._ready.result()
        self.model = self.loop.run_until_complete(served_model(self.client))
        return seconds

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]:
        self.single(prompts, new_tokens)
        self.burst(prompts[0], clients, new_tokens, probe=False)
        return [self.describe()]

    def describe(self) -> str:
        """The report's note on how this server ran."""
        return (
            f"`llm-gateway serve` on 127.0.0.1, model id {self.model!r}, {self.plan.threads} threads, the server's "
            "default settings (the shell's LLM_GATEWAY_* variables are not passed on)"
            + "".join(f", {k}={v}" for k, v in self.extra_env.items())
        )

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]:
        timings = []
        for prompt in prompts:
            result = self.loop.run_until_complete(
                stream_one(self.client, prompt.prompt, self.model, new_tokens, extra=self.extra_body)
            )
            self._check_prompt_tokens(prompt, result.prompt_tokens)
            timings.append(result.timing)
        return timings

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst:
        return self.run(burst_scenario(prompt.prompt, clients, self.extra_body), new_tokens, probe)

    def run_results(self, scenario: Scenario, new_tokens: int) -> tuple[list[StreamResult], float]:
        """One scenario: every request's result (clients in order, each client's turns in order), the wall time."""
        return self.loop.run_until_complete(run_scenario(self.client, scenario, self.model, new_tokens))

    def run(self, scenario: Scenario, new_tokens: int, probe: bool = False) -> Burst:
        """One scenario against this server, /v1/health probed meanwhile when `probe`."""
        prober = self._start_probe() if probe else None
        try:
            results, wall = self.run_results(scenario, new_tokens)
        finally:
            health = self._stop_probe(prober) if prober else Health([], [])
        return Burst([r.timing for r in results], wall, health.latencies_s, health.errors)

    def finish(self) -> int:
        rss = self.server.peak_rss_bytes()
        self._close_client()
        code = self.server.stop()
        if code not in (0, -15):
            raise RuntimeError(f"{self.server.name} exited with {code} on SIGTERM:\n{self.server.log_tail()}")
        return rss

    def abort(self) -> None:
        self._close_client()
        self.server.stop(timeout=10)

    def _close_client(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.client.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _check_prompt_tokens(self, prompt: EncodedPrompt, counted: int | None) -> None:
        if counted is not None and counted != len(prompt.ids):
            self.prompt_token_mismatches.add(
                f"{prompt.id}: the server counted {counted} prompt tokens, the bench tokenizer {len(prompt.ids)}"
            )

    def _start_probe(self) -> subprocess.Popen:
        cmd = [
            sys.executable, "-m", "benchmarks.load", self.server.host, str(self.server.port), "/v1/health",
            str(self.plan.health_interval_s), str(self.plan.step_timeout_s),
        ]  # fmt: skip
        prober = spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert prober.stdout is not None
        if prober.stdout.readline().strip() != "ready":
            prober.kill()
            raise RuntimeError("the /v1/health prober did not start")
        return prober

    @staticmethod
    def _stop_probe(prober: subprocess.Popen) -> Health:
        out, _ = prober.communicate(input="", timeout=60)
        return msgspec.json.decode(out.strip().splitlines()[-1], type=Health)


class Health(msgspec.Struct):
    """What the prober saw: the latency of every answered probe, and what went wrong with the others."""

    latencies_s: list[float]
    errors: list[str]


def probe(host: str, port: int, path: str, interval: float, max_seconds: float, stop: threading.Event) -> Health:
    latencies: list[float] = []
    errors: list[str] = []
    conn = http.client.HTTPConnection(host, port, timeout=10)
    deadline = time.monotonic() + max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            if response.status == 200:
                latencies.append(elapsed)
            else:
                errors.append(f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        stop.wait(max(0.0, interval - (time.perf_counter() - start)))
    conn.close()
    return Health(latencies, errors)


def main(argv: list[str]) -> int:
    host, port, path, interval, max_seconds = argv[0], int(argv[1]), argv[2], float(argv[3]), float(argv[4])
    stop = threading.Event()

    def wait_for_parent() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin
        stop.set()

    threading.Thread(target=wait_for_parent, daemon=True).start()
    print("ready", flush=True)
    print(msgspec.json.encode(probe(host, port, path, interval, max_seconds, stop)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
