"""Sampling seeds, stop strings, UTF-8 streaming, cancellation, limits: through the real Engine."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.errors import InvalidParams, PromptTooLong, QueueFull
from app.engine.params import SamplingParams
from app.engine.stopping import FinishReason
from tests.engine.conftest import PROMPTS, generate, run, running_engine


@pytest.fixture(scope="module")
def folder(real_models):
    return real_models.default


def test_same_seed_same_text_other_seed_other_text(folder):
    # the prefix cache off: on the int8 default a hit (here: the twin running beside it) splits the prompt into
    # other ORT calls, and int8 activations make the text depend on that split (docs/engine.md)
    async def main():
        async with running_engine(folder, prefix_cache_mb=0) as engine:
            ids = engine.tokenizer.encode_chat(PROMPTS[1])
            sample = lambda seed: SamplingParams(max_new_tokens=32, temperature=0.9, top_p=0.95, seed=seed)  # noqa: E731
            a, b, c = await asyncio.gather(*[generate(engine, ids, sample(s)) for s in (1, 1, 2)])
            return a[0], b[0], c[0]

    a, b, c = run(main())
    assert a == b
    assert a != c


def test_stop_strings_across_token_boundaries_are_cut_and_never_streamed(folder):
    async def main():
        async with running_engine(folder) as engine:
            ids = engine.tokenizer.encode_chat(PROMPTS[0])
            free, _ = await generate(engine, ids, SamplingParams(max_new_tokens=16))
            text = engine.tokenizer.decode(free)
            # a stop string that starts inside one token and ends inside the next
            pieces = [engine.tokenizer.decode([t]) for t in free]
            stop = pieces[3][-2:] + pieces[4][:2]
            _, events = await generate(engine, ids, SamplingParams(max_new_tokens=16, stop=(stop,)))
            return text, stop, events

    text, stop, events = run(main())
    streamed = "".join(e.text for e in events)
    assert streamed == text[: text.index(stop)]
    assert events[-1].finish_reason is FinishReason.STOP
    assert all(stop[:2] not in e.text or e is events[-1] for e in events[:-1])


def test_utf8_streaming_pieces_join_to_the_whole_text(folder):
    # sampled text depends on the variant `--quant auto` chose here: take the first seed whose sample holds
    # characters of three UTF-8 bytes or more (emoji, CJK), which a token boundary can split
    async def main():
        async with running_engine(folder) as engine:
            ids = engine.tokenizer.encode("Emoji list: 🌊 🌙 ✨ 🐙 🍣 and Japanese 日本語の文章:")
            for seed in range(5, 13):
                params = SamplingParams(max_new_tokens=48, temperature=1.0, seed=seed, ignore_eos=True)
                tokens, events = await generate(engine, ids, params)
                whole = engine.tokenizer.decode(tokens)
                if any(ord(ch) > 0x7FF for ch in whole):
                    break
            return whole, events

    whole, events = run(main())
    assert any(ord(ch) > 0x7FF for ch in whole), "no sample of seeds 5-12 held multi-byte characters"
    # a character split across pieces would show as U+FFFD in the joined pieces but not in the whole text
    assert "".join(e.text for e in events) == whole


def test_cancellation_frees_the_slot_and_thousands_leak_nothing(folder):
    async def main():
        async with running_engine(folder, max_running=4, max_waiting=8) as engine:
            ids = engine.tokenizer.encode("Tell me a story.")
            long = SamplingParams(max_new_tokens=500, ignore_eos=True)
            stream = engine.submit(ids, long)
            got = [await stream.__anext__() for _ in range(3)]
            stream.cancel()
            final = [e async for e in stream][-1]
            assert final.finish_reason is FinishReason.ABORT and len(got) == 3
            for round_ in range(250):  # 2,000 cancellations: queued, prefilling and decoding ones
                streams = [engine.submit(ids, long) for _ in range(8)]
                if round_ % 2:
                    await asyncio.sleep(0.002)
                for s in streams:
                    s.cancel()
                for s in streams:
                    async for _ in s:
                        pass
            await asyncio.sleep(0.05)
            tokens, _ = await generate(engine, ids, SamplingParams(max_new_tokens=4, ignore_eos=True))
            drained = await engine.drain(0.0)  # no stream left open
            return engine, tokens, drained

    engine, tokens, drained = run(main())
    assert len(tokens) == 4 and drained
    stats = engine.stats  # waiting counts every submitted request not yet finished, beside running/prefilling
    assert (stats.running, stats.waiting, stats.prefilling) == (0, 0, 0)


def test_queue_full_is_refused_at_once(folder):
    async def main():
        async with running_engine(folder, max_running=1, max_waiting=1) as engine:
            ids = engine.tokenizer.encode("Hello")
            long = SamplingParams(max_new_tokens=200, ignore_eos=True)
            first, second = engine.submit(ids, long), engine.submit(ids, long)
            with pytest.raises(QueueFull):
                engine.submit(ids, long)
            first.cancel()
            second.cancel()

    run(main())


def test_prompt_too_long_and_bad_params_are_refused_before_taking_a_slot(folder):
    async def main():
        async with running_engine(folder, max_len=64) as engine:
            with pytest.raises(PromptTooLong, match="64"):
                engine.submit(list(range(100, 160)), SamplingParams(max_new_tokens=8))
            with pytest.raises(InvalidParams) as err:
                engine.submit([1, 2, 3], SamplingParams(top_p=0.0))
            assert err.value.field == "top_p"
            assert engine.stats.waiting == 0 and await engine.drain(0.0)

    run(main())
