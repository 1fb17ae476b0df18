"""Continuous batching does not change results: alone or beside requests of other lengths, same tokens."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.params import SamplingParams
from tests.engine.conftest import PROMPTS, generate, run, running_engine


@pytest.mark.parametrize("graph", ["gqa", "optimum"])
def test_greedy_alone_equals_greedy_in_a_ragged_batch(real_models, graph):
    folder = real_models.get(graph, "fp32")

    async def main():
        async with running_engine(folder, prefill_chunk=16) as engine:
            prompts = [engine.tokenizer.encode_chat(chat) for chat in PROMPTS]
            lengths = [40, 24, 56, 8, 32]  # sequences leave the batch at different steps
            params = [SamplingParams(max_new_tokens=n, ignore_eos=True) for n in lengths]
            alone = [(await generate(engine, ids, p))[0] for ids, p in zip(prompts, params, strict=True)]
            together = await asyncio.gather(*[generate(engine, ids, p) for ids, p in zip(prompts, params, strict=True)])
            staggered = []
            for ids, p in zip(prompts, params, strict=True):  # arrivals while others decode: chunked prefill
                staggered.append(asyncio.create_task(generate(engine, ids, p)))
                await asyncio.sleep(0.05)
            staggered = await asyncio.gather(*staggered)
            return alone, [t for t, _ in together], [t for t, _ in staggered]

    alone, together, staggered = run(main())
    assert together == alone
    assert staggered == alone
