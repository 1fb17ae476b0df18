"""The HTTP contestant: `llm-gateway serve` in a subprocess, driven from the bench process by streaming
clients; /v1/health probed from a third process during the largest burst."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.drivers import Burst
from benchmarks.http_load import burst, make_client, served_model, stream_one
from benchmarks.plan import Plan
from benchmarks.promptset import EncodedPrompt
from benchmarks.server_proc import ServerProcess
from benchmarks.timing import StreamTiming


class HttpDriver:
    def __init__(self, model_dir: Path, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        log = workdir / "logs" / "server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(model_dir, plan.threads, log, plan.load_timeout_s)
        self.loop = asyncio.new_event_loop()
        self.client = make_client(self.server.base_url, max(plan.levels) + 4)
        self.model = ""
        self.prompt_token_mismatches: set[str] = set()

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def ready(self) -> float:
        seconds = self.server.wait_ready()
        self.model = self.loop.run_until_complete(served_model(self.client))
        return seconds

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]:
        self.single(prompts, new_tokens)
        self.burst(prompts[0], clients, new_tokens, probe=False)
        return [
            f"`llm-gateway serve` on 127.0.0.1, model id {self.model!r}, {self.plan.threads} threads, the server's "
            "default settings (the shell's LLM_GATEWAY_* variables are not passed on)"
        ]

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]:
        timings = []
        for prompt in prompts:
            result = self.loop.run_until_complete(stream_one(self.client, prompt.prompt, self.model, new_tokens))
            self._check_prompt_tokens(prompt, result.prompt_tokens)
            timings.append(result.timing)
        return timings

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst:
        prober = self._start_probe() if probe else None
        try:
            results, wall = self.loop.run_until_complete(
                burst(self.client, prompt.prompt, self.model, clients, new_tokens)
            )
        finally:
            health = self._stop_probe(prober) if prober else {"latencies_s": [], "errors": []}
        return Burst([r.timing for r in results], wall, health["latencies_s"], health["errors"])

    def finish(self) -> int:
        rss = self.server.peak_rss_bytes()
        self._close_client()
        code = self.server.stop()
        if code not in (0, -15):
            raise RuntimeError(f"`llm-gateway serve` exited with {code} on SIGTERM:\n{self.server.log_tail()}")
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
            sys.executable, "-m", "benchmarks.probe", self.server.host, str(self.server.port), "/v1/health",
            str(self.plan.health_interval_s), str(self.plan.step_timeout_s),
        ]  # fmt: skip
        prober = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert prober.stdout is not None
        if prober.stdout.readline().strip() != "ready":
            prober.kill()
            raise RuntimeError("the /v1/health prober did not start")
        return prober

    @staticmethod
    def _stop_probe(prober: subprocess.Popen) -> dict:
        out, _ = prober.communicate(input="", timeout=60)
        return json.loads(out.strip().splitlines()[-1])
