"""Engine helpers: run an Engine on a real exported folder inside one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from app.engine.engine import Engine, EngineConfig
from app.engine.params import SamplingParams
from app.engine.request import TokenEvent

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a short poem about autumn leaves."}],
    [{"role": "system", "content": "You answer in one sentence."}, {"role": "user", "content": "Why do cats purr?"}],
    [{"role": "user", "content": "Give me three tips for learning to play the guitar."}],
    [{"role": "user", "content": "Translate 'good morning' into Spanish and German."}],
]


@contextlib.asynccontextmanager
async def running_engine(folder: Path, **config) -> AsyncIterator[Engine]:
    engine = Engine(EngineConfig(model_dir=folder, threads=2, **config))
    engine.start()
    try:
        yield engine
    finally:
        await engine.shutdown()


async def generate(engine: Engine, ids: list[int], params: SamplingParams) -> tuple[list[int], list[TokenEvent]]:
    events = [event async for event in engine.submit(ids, params)]
    tokens = [t for e in events for t in e.token_ids]
    return tokens, events


def run(coro):
    return asyncio.run(coro)
