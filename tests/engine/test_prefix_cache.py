"""The prefix cache on the real fp32 export: outputs equal the cache-off run token for token, hits are counted,
salts isolate, a tiny budget evicts (and unmaps), and many distinct prompts leave memory bounded. The cache's
bookkeeping in every corner is tested fast, on the fake runner (tests/unit/test_prefix_cache.py)."""

from __future__ import annotations

import asyncio
import mmap
from pathlib import Path

import numpy as np
import pytest

from app.engine.params import SamplingParams
from app.engine.runner import KvSnapshot
from tests.engine.conftest import generate, run, running_engine

SYSTEM = "You are a patient tutor. You explain every step, you check the student's answer, and you stay polite. " * 3
FRANCE = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the capital of France?"}]
OTHER = [
    {"role": "system", "content": "Answer in French, in one short sentence, and never use an English word. " * 2},
    {"role": "user", "content": "Name a fruit."},
]
GREEDY = SamplingParams(max_new_tokens=12, ignore_eos=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE


async def _script(engine) -> dict[str, tuple[list[int], int, int]]:
    """One fixed series of requests; returns {name: (tokens, cached_tokens, prompt_tokens)}."""
    enc = engine.tokenizer.encode_chat
    results = {}

    async def one(name, ids, params=GREEDY, salt=""):
        events = [e async for e in engine.submit(ids, params, cache_salt=salt)]
        results[name] = ([t for e in events for t in e.token_ids], events[-1].usage.cached_tokens, len(ids))

    first = enc(FRANCE)
    await one("cold", first)  # nothing cached yet
    await one("other", enc(OTHER))  # shares only the chat template's opening: too short to reuse
    turn2 = [
        *FRANCE,
        {"role": "assistant", "content": engine.tokenizer.decode(results["cold"][0])},
        {"role": "user", "content": "And of Spain?"},
    ]
    await one("turn2", enc(turn2))  # the whole first turn is a prefix
    await one("again", first)  # the whole prompt matches: the last position is recomputed
    await one("salted", first, salt="tenant-b")  # another salt sees nothing
    # a hit while another sequence decodes: under a fresh salt, the only donor is the running slot
    decoding = SamplingParams(max_new_tokens=48, ignore_eos=True)
    long = asyncio.create_task(one("donor", enc(OTHER), decoding, salt="live"))
    await asyncio.sleep(0.3)
    await one("beside", enc([*OTHER, {"role": "assistant", "content": "Une pomme."}]), salt="live")
    await long
    return results


def _run_script(folder: Path, mb: int):
    async def main():
        async with running_engine(folder, prefix_cache_mb=mb, prefill_chunk=16) as engine:
            results = await _script(engine)
            cache = engine.prefix_cache
            return results, (cache.cached_tokens, cache.budget_tokens) if cache else None

    return run(main())


@pytest.fixture(scope="module")
def without_cache(real_models):
    results, cache = _run_script(real_models.get("gqa", "fp32"), 0)
    assert cache is None
    return results


def test_cache_changes_no_token_and_counts_hits(real_models, without_cache):
    with_cache, _ = _run_script(real_models.get("gqa", "fp32"), 64)
    assert {k: r[0] for k, r in with_cache.items()} == {k: r[0] for k, r in without_cache.items()}
    assert all(r[1] == 0 for r in without_cache.values())
    cached = {k: r[1] for k, r in with_cache.items()}
    prompt = {k: r[2] for k, r in with_cache.items()}
    assert cached["cold"] == 0
    assert cached["other"] == 0  # the template's opening only: under MIN_REUSE_TOKENS
    assert cached["turn2"] >= prompt["cold"]  # system prompt, question and (most of) the first answer
    assert cached["again"] == prompt["cold"] - 1  # all but the last position
    assert cached["salted"] == 0
    assert cached["donor"] == 0 and cached["beside"] > prompt["other"] - 8


def test_tiny_budget_evicts_and_stays_exact(real_models, without_cache):
    results, (held, budget) = _run_script(real_models.get("gqa", "fp32"), 2)
    assert {k: r[0] for k, r in results.items()} == {k: r[0] for k, r in without_cache.items()}
    assert budget == 2 * 2**20 // (2 * 30 * 3 * 64 * 4)
    assert 0 < held <= budget


def test_n_choices_prefill_once_and_equal_the_choice_alone(real_models):
    async def main():
        async with running_engine(real_models.get("gqa", "fp32"), prefix_cache_mb=64) as engine:
            ids = engine.tokenizer.encode_chat(FRANCE)
            params = SamplingParams(max_new_tokens=16, ignore_eos=True)
            choices = await asyncio.gather(*[generate(engine, ids, params) for _ in range(3)])
            return ids, choices

    ids, choices = run(main())
    (first, first_events), *others = choices
    assert first_events[-1].usage.cached_tokens == 0
    for tokens, events in others:  # admitted after the first, which is then a running donor
        assert tokens == first and events[-1].usage.cached_tokens == len(ids) - 1


def test_snapshot_memory_goes_back_to_the_os():
    kv = [np.ones((3, 2048, 64), np.float32) for _ in range(8)]  # 8 x [kv_heads, len, head_dim], 1.5 MB each
    before = rss_bytes()
    snap = KvSnapshot(kv, 2048)
    grown = rss_bytes() - before
    snap.close()
    assert grown > 10 * 2**20
    assert rss_bytes() - before < 2 * 2**20


def test_a_thousand_distinct_prompts_leave_rss_bounded(real_models):
    folder = real_models.get("gqa", "fp32")

    async def main():
        async with running_engine(folder, prefix_cache_mb=4) as engine:
            params = SamplingParams(max_new_tokens=1)
            rss = []
            # 4 MB hold ~90 positions: from the sixth prompt on, each one evicts; snapshots that were kept
            # would add ~0.6 MB a prompt (some 13 positions), over 500 MB across the 900 measured
            for i in range(1000):
                ids = engine.tokenizer.encode(f"Request {i}: name the number {i * 7919 % 10007}.")
                await generate(engine, ids, params)
                if i in (99, 999):
                    rss.append(rss_bytes())
            return rss, engine.prefix_cache.cached_tokens, engine.prefix_cache.budget_tokens

    (after_100, after_1000), held, budget = run(main())
    assert held <= budget
    assert after_1000 - after_100 < 16 * 2**20
