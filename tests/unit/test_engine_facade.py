"""The Engine facade on the fake runner: its thread, streams, refusals, cancellation, deadlines, failures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from app.engine.engine import Engine, EngineConfig, ModelParts
from app.engine.errors import InvalidParams, PromptTooLong, QueueFull
from app.engine.params import Grammar, GrammarKind, SamplingParams
from app.engine.request import TokenEvent
from app.engine.stats import NullObserver
from app.engine.stopping import FinishReason
from tests.unit.fakes import (
    FakeRunner,
    FakeTokenizer,
    constrained_reference,
    create_prompts,
    fake_grammars,
    fake_manifest,
    reference,
)


@contextlib.asynccontextmanager
async def fake_engine(max_len: int = 256, **config) -> AsyncIterator[tuple[Engine, FakeRunner]]:
    cfg = EngineConfig(model_dir=None, max_len=max_len, **config)  # type: ignore[arg-type]
    runner = FakeRunner(max_slots=cfg.max_running + 1, max_len=max_len)
    parts = ModelParts(fake_manifest(max_len), runner, FakeTokenizer(), fake_grammars())  # type: ignore[arg-type]
    engine = Engine(cfg, parts=parts)
    engine.start()
    try:
        yield engine, runner
    finally:
        runner.gate.set()
        await engine.shutdown()


async def collect(stream) -> tuple[list[int], list[TokenEvent]]:
    events = [e async for e in stream]
    return [t for e in events for t in e.token_ids], events


def idle(engine: Engine) -> bool:
    stats = engine.stats
    return (stats.running, stats.waiting, stats.prefilling) == (0, 0, 0)


def test_parallel_submissions_each_stream_their_reference():
    async def main():
        async with fake_engine(max_running=4, prefill_chunk=3) as (engine, runner):
            prompts = [*create_prompts(3, length=8), create_prompts(1, length=8)[0]]  # the last one twice (n=2)
            streams = [engine.submit(p, SamplingParams(max_new_tokens=10)) for p in prompts]
            results = await asyncio.gather(*[collect(s) for s in streams])
            assert await engine.drain(1.0) and idle(engine) and runner.free
            return prompts, results

    prompts, results = asyncio.run(main())
    for prompt, (tokens, events) in zip(prompts, results, strict=True):
        assert tokens == reference(prompt, 10)
        assert events[-1].finish_reason is FinishReason.LENGTH and events[-1].usage.prompt_tokens == 8
        assert "".join(e.text for e in events) == FakeTokenizer().decode(tokens)


def test_refusals_are_raised_at_submit_and_take_no_slot():
    async def main():
        async with fake_engine(max_len=32) as (engine, _):
            with pytest.raises(PromptTooLong, match="32"):
                engine.submit(list(range(1, 30)), SamplingParams(max_new_tokens=8))
            with pytest.raises(InvalidParams) as err:
                engine.submit([], SamplingParams())
            assert err.value.field == "prompt"
            with pytest.raises(InvalidParams) as err:
                engine.submit([1, 2], SamplingParams(stop_token_ids=(99,)))
            assert err.value.field == "stop_token_ids"
            assert idle(engine) and await engine.drain(0.0)

    asyncio.run(main())


def test_queue_full_is_refused_at_once_and_the_admitted_ones_finish():
    async def main():
        async with fake_engine(max_running=1, max_waiting=1) as (engine, runner):
            runner.gate.clear()  # the engine thread holds in its first prefill
            prompt = create_prompts(1)[0]
            first, second = (engine.submit(prompt, SamplingParams(max_new_tokens=3)) for _ in range(2))
            with pytest.raises(QueueFull):
                engine.submit(prompt, SamplingParams(max_new_tokens=3))
            runner.gate.set()
            return prompt, await collect(first), await collect(second)

    prompt, (a, _), (b, _) = asyncio.run(main())
    assert a == b == reference(prompt, 3)


def test_cancel_ends_the_stream_with_abort_and_frees_the_slot():
    async def main():
        async with fake_engine() as (engine, runner):
            prompt = create_prompts(1)[0]
            runner.pause_after(2)  # a prefill and one decode, then the engine thread holds in the next decode
            stream = engine.submit(prompt, SamplingParams(max_new_tokens=200, ignore_eos=True))
            got = [await stream.__anext__() for _ in range(2)]
            assert await asyncio.to_thread(runner.held.wait, 30)
            stream.cancel()
            runner.gate.set()  # the held decode completes, then the abort is applied before another step
            rest = [e async for e in stream]
            after, _ = await collect(engine.submit(prompt, SamplingParams(max_new_tokens=4)))
            return prompt, got, rest, after, idle(engine) and runner.free

    prompt, got, rest, after, freed = asyncio.run(main())
    tokens = [t for e in got + rest for t in e.token_ids]
    assert rest[-1].finish_reason is FinishReason.ABORT and rest[-1].usage.completion_tokens == 3
    assert tokens == reference(prompt, 3)
    assert after == reference(prompt, 4) and freed


def test_a_passed_deadline_ends_the_request_with_timeout_before_it_runs():
    async def main():
        async with fake_engine() as (engine, runner):
            prompt = create_prompts(1)[0]
            late = engine.submit(prompt, SamplingParams(max_new_tokens=5), deadline=time.monotonic() - 1)
            on_time = engine.submit(prompt, SamplingParams(max_new_tokens=5), deadline=time.monotonic() + 60)
            return await collect(late), await collect(on_time), idle(engine) and runner.free

    (late, late_events), (on_time, _), freed = asyncio.run(main())
    assert late == [] and late_events[-1].finish_reason is FinishReason.TIMEOUT
    assert late_events[-1].timings is not None
    assert on_time == reference(create_prompts(1)[0], 5) and freed


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_a_runner_failure_ends_the_request_with_an_error_and_the_engine_keeps_serving(kind):
    async def main():
        async with fake_engine() as (engine, runner):
            prompt = create_prompts(1)[0]
            runner.fail_next(kind)
            _, failed = await collect(engine.submit(prompt, SamplingParams(max_new_tokens=6)))
            served, _ = await collect(engine.submit(prompt, SamplingParams(max_new_tokens=6)))
            return prompt, failed, served, idle(engine) and runner.free

    prompt, failed, served, freed = asyncio.run(main())
    assert failed[-1].finish_reason is FinishReason.ERROR
    assert f"injected {kind} failure" in failed[-1].error
    assert served == reference(prompt, 6) and freed


def test_hundreds_of_cancellations_in_every_state_leak_no_slot_and_no_request():
    async def main():
        async with fake_engine(max_running=4, max_waiting=8) as (engine, runner):
            prompt = create_prompts(1)[0]
            for round_ in range(50):  # queued, prefilling and decoding ones
                streams = [engine.submit(prompt, SamplingParams(max_new_tokens=100, ignore_eos=True)) for _ in range(8)]
                if round_ % 2:
                    await asyncio.sleep(0.001)
                for s in streams:
                    s.cancel()
                for s in streams:
                    await collect(s)
            after, _ = await collect(engine.submit(prompt, SamplingParams(max_new_tokens=4)))
            return prompt, after, await engine.drain(1.0), idle(engine), runner.free

    prompt, after, drained, is_idle, freed = asyncio.run(main())
    assert after == reference(prompt, 4) and drained and is_idle and freed


def test_a_submitted_grammar_gets_its_own_matcher_beside_plain_requests():
    async def main():
        async with fake_engine(max_running=4) as (engine, runner):
            prompts = create_prompts(3, length=5)
            grammar = Grammar(GrammarKind.REGEX, "[dg]{5}")
            engine.grammars.compile(grammar)  # the route does this on a worker thread before submit
            params = SamplingParams(max_new_tokens=8, grammar=grammar)
            streams = [
                engine.submit(prompts[0], params),
                engine.submit(prompts[1], SamplingParams(max_new_tokens=8)),
                engine.submit(prompts[2], params),  # the same grammar: a matcher of its own
            ]
            results = await asyncio.gather(*[collect(s) for s in streams])
            assert await engine.drain(1.0) and idle(engine) and runner.free
            return prompts, results

    prompts, ((first, events), (plain, _), (third, _)) = asyncio.run(main())
    assert first == constrained_reference(prompts[0], 5) and third == constrained_reference(prompts[2], 5)
    assert plain == reference(prompts[1], 8)
    assert events[-1].finish_reason is FinishReason.STOP


def test_the_prefix_cache_serves_a_repeated_prompt_per_salt_and_reports_it_in_stats():
    async def main():
        async with fake_engine(prefix_cache_mb=1) as (engine, runner):
            prompt = create_prompts(1, length=40)[0]
            params = SamplingParams(max_new_tokens=5)
            runs = [await collect(engine.submit(prompt, params, cache_salt=salt)) for salt in ("", "", "b")]
            return prompt, runs, engine.prefix_cache.budget_tokens, engine.stats, runner.free

    prompt, runs, budget, stats, freed = asyncio.run(main())
    assert [events[-1].usage.cached_tokens for _, events in runs] == [0, 39, 0]
    assert all(tokens == reference(prompt, 5) for tokens, _ in runs)
    assert budget == 2**20 // 1024 and stats.cached_tokens == 2 * (40 + 4) and stats.kv_usage == 0.0
    assert freed


def test_a_zero_budget_turns_the_prefix_cache_off():
    async def main():
        async with fake_engine(prefix_cache_mb=0) as (engine, runner):
            prompt = create_prompts(1, length=40)[0]
            runs = [await collect(engine.submit(prompt, SamplingParams(max_new_tokens=3))) for _ in range(2)]
            return engine.prefix_cache, runs, engine.stats, runner

    cache, runs, stats, runner = asyncio.run(main())
    assert cache is None and stats.cached_tokens == 0 and not runner.snapshots
    assert [events[-1].usage.cached_tokens for _, events in runs] == [0, 0]


def test_the_kv_budget_bounds_the_batch_and_every_request_still_gets_its_reference():
    class Batches(NullObserver):
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def on_step(self, kind: str, seconds: float, batch_size: int, tokens: int) -> None:
            if kind == "decode":
                self.sizes.append(batch_size)

    async def main():
        # 1 MB of fake KV is 1,024 positions; each request reserves 6 + 250: four fit, max_running would allow 8
        cfg = EngineConfig(model_dir=None, max_len=512, max_running=8, kv_budget_mb=1)  # type: ignore[arg-type]
        runner = FakeRunner(max_slots=9, max_len=512)
        parts = ModelParts(fake_manifest(512), runner, FakeTokenizer(), fake_grammars())  # type: ignore[arg-type]
        observer = Batches()
        engine = Engine(cfg, observer, parts)
        engine.start()
        try:
            prompts = create_prompts(6, length=6)
            params = SamplingParams(max_new_tokens=250, ignore_eos=True)
            results = await asyncio.gather(*[collect(engine.submit(p, params)) for p in prompts])
            assert await engine.drain(1.0) and idle(engine) and runner.free
        finally:
            await engine.shutdown()
        return engine.kv_budget_tokens, observer.sizes, prompts, results

    budget, sizes, prompts, results = asyncio.run(main())
    assert budget == 1024 and max(sizes) == 4
    assert [tokens for tokens, _ in results] == [reference(p, 250) for p in prompts]
