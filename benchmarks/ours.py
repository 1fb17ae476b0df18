"""Our engine in-process, inside a worker (benchmarks/worker.py): single streams and bursts of concurrent requests.

Times are taken where an application would see them: when each TokenEvent reaches the asyncio side.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from app.config import load_settings
from app.engine.engine import Engine
from app.engine.params import SamplingParams
from benchmarks.scenarios import COLD_ENV
from benchmarks.stats import StreamTiming


class EngineContestant:
    def __init__(self, model_dir: Path, threads: int) -> None:
        # the server's defaults with the prefix cache off, as `llm-gateway serve` runs them in the HTTP contestant:
        # the same prompt every repetition must be a cold prefill (benchmarks/scenarios.py measures the cache)
        config = load_settings(COLD_ENV, model_dir=model_dir, threads=threads).engine_config()
        self.loop = asyncio.new_event_loop()
        self.engine = Engine(config)
        self.loop.run_until_complete(self._start())
        self.notes = [f"Engine in-process, {threads} threads, max_running {config.max_running}, prefix cache off"]

    async def _start(self) -> None:
        self.engine.start()

    def warmup(self, prompts: list[tuple[str, list[int]]], new_tokens: int) -> None:
        for prompt_id, ids in prompts:
            self.generate(ids, new_tokens, prompt_id)

    def generate(self, ids: list[int], new_tokens: int, prompt_id: str) -> StreamTiming:
        return self.loop.run_until_complete(self._stream(ids, new_tokens, prompt_id, time.perf_counter()))

    def burst(self, ids: list[int], clients: int, new_tokens: int, prompt_id: str) -> tuple[list[StreamTiming], float]:
        """`clients` identical requests submitted at once; returns their timings and the wall time."""
        return self.loop.run_until_complete(self._burst(ids, clients, new_tokens, prompt_id))

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.shutdown())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _burst(
        self, ids: list[int], clients: int, new_tokens: int, prompt_id: str
    ) -> tuple[list[StreamTiming], float]:
        start = time.perf_counter()
        timings = await asyncio.gather(*(self._stream(ids, new_tokens, prompt_id, start) for _ in range(clients)))
        return list(timings), max(t.end for t in timings)

    async def _stream(self, ids: list[int], new_tokens: int, prompt_id: str, start: float) -> StreamTiming:
        params = SamplingParams(max_new_tokens=new_tokens, ignore_eos=True)
        stream = self.engine.submit(ids, params)
        times: list[float] = []
        tokens = 0
        async for event in stream:
            if event.error:
                raise RuntimeError(f"engine error on {prompt_id}: {event.error}")
            if event.token_ids:
                times.append(time.perf_counter() - start)
                tokens += len(event.token_ids)
        return StreamTiming(prompt_id, tuple(times), tokens)
