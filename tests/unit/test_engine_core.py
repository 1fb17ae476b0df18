"""EngineCore and the Scheduler on the fake runner: chunked prefill, slot moves, stopping, failures (milliseconds)."""

from __future__ import annotations

import re

import pytest

from app.engine.params import Grammar, GrammarKind, SamplingParams
from app.engine.request import RequestStatus
from app.engine.stopping import FinishReason
from tests.unit.fakes import (
    EOS,
    FakeRunner,
    FakeTokenizer,
    constrained_reference,
    create_prompts,
    create_sequence,
    fake_grammars,
    reference,
)
from tests.unit.harness import Harness


def greedy(n: int, **kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, **kw)


def prefills(runner: FakeRunner, slot: int | None = None) -> list[tuple]:
    return [c for c in runner.calls if c[0] == "prefill" and (slot is None or c[1] == slot)]


def test_alone_a_prompt_prefills_in_one_call_and_decodes_the_reference():
    h = Harness(prefill_chunk=4)
    [prompt] = create_prompts(1, length=10)
    h.add(create_sequence("a", prompt, greedy(6)))
    h.run()
    assert prefills(h.runner) == [("prefill", 0, 0, 10)]
    assert h.tokens("a") == reference(prompt, 6)
    final = h.final("a")
    assert final.finish_reason is FinishReason.LENGTH and final.usage.completion_tokens == 6
    assert h.runner.free and not h.scheduler.busy


def test_beside_a_running_stream_the_prompt_prefills_in_chunks_and_both_keep_their_output():
    h = Harness(prefill_chunk=4)
    pa, pb = create_prompts(2, length=10)
    a, b = create_sequence("a", pa, greedy(12)), create_sequence("b", pb, greedy(5))
    h.add(a)
    h.step_until_running(a)
    h.add(b)
    h.run()
    assert prefills(h.runner, slot=1) == [("prefill", 1, 0, 4), ("prefill", 1, 4, 4), ("prefill", 1, 8, 2)]
    # a decoded on every step that carried one of b's chunks
    assert ("decode", 1) in h.runner.calls[1:4]
    assert h.tokens("a") == reference(pa, 12) and h.tokens("b") == reference(pb, 5)


def test_a_sequence_leaving_moves_the_last_one_into_its_slot_and_outputs_do_not_change():
    h = Harness(max_running=3, prefill_chunk=64)
    prompts = create_prompts(3)
    seqs = [create_sequence(str(i), p, greedy(n)) for i, (p, n) in enumerate(zip(prompts, (3, 9, 9), strict=True))]
    for seq in seqs:
        h.add(seq)
        h.step_until_running(seq)
    h.run()
    [move] = [c for c in h.runner.calls if c[0] == "move"]
    assert move[1:3] == (2, 0)  # the last of the batch fills the gap that sequence 0 left
    for seq, prompt, n in zip(seqs, prompts, (3, 9, 9), strict=True):
        assert h.tokens(seq.request_id) == reference(prompt, n)
    assert h.runner.free


def test_an_abort_mid_batch_frees_its_slot_and_the_others_go_on_unchanged():
    h = Harness(max_running=3, prefill_chunk=64)
    prompts = create_prompts(3)
    seqs = [create_sequence(str(i), p, greedy(10)) for i, p in enumerate(prompts)]
    for seq in seqs:
        h.add(seq)
        h.step_until_running(seq)
    h.finish(seqs[0], FinishReason.ABORT)
    h.run()
    assert h.final("0").finish_reason is FinishReason.ABORT
    assert len(h.tokens("0")) < 10
    assert any(c[0] == "move" and c[1:3] == (2, 0) for c in h.runner.calls)
    assert h.tokens("1") == reference(prompts[1], 10) and h.tokens("2") == reference(prompts[2], 10)
    assert h.runner.free


def test_an_abort_while_prefilling_in_chunks_moves_nothing_and_frees_the_slot():
    h = Harness(prefill_chunk=4)
    pa, pb = create_prompts(2, length=12)
    a, b = create_sequence("a", pa, greedy(8)), create_sequence("b", pb, greedy(8))
    h.add(a)
    h.step_until_running(a)
    h.add(b)
    h.step()  # b's first chunk
    assert b.status is RequestStatus.PREFILLING
    h.finish(b, FinishReason.ABORT)
    h.run()
    assert h.final("b").finish_reason is FinishReason.ABORT and h.tokens("b") == []
    assert not any(c[0] == "move" for c in h.runner.calls)
    assert h.tokens("a") == reference(pa, 8) and h.runner.free


def test_a_waiting_sequence_can_be_finished_before_it_ever_runs():
    h = Harness(max_running=1)
    pa, pb = create_prompts(2)
    a, b = create_sequence("a", pa, greedy(3)), create_sequence("b", pb, greedy(3))
    h.add(a, b)
    h.step()
    assert b.status is RequestStatus.WAITING
    h.finish(b, FinishReason.TIMEOUT)
    h.run()
    assert h.final("b").finish_reason is FinishReason.TIMEOUT and h.tokens("b") == []
    assert h.tokens("a") == reference(pa, 3)


def test_a_stop_string_across_token_boundaries_is_cut_and_never_streamed():
    [prompt] = create_prompts(1)
    free = reference(prompt, 10)
    tok = FakeTokenizer()
    pieces = [tok.decode([t]) for t in free]
    text = "".join(pieces)
    stop = pieces[3][-1:] + pieces[4] + pieces[5][:1]  # starts inside token 3, ends inside token 5
    h = Harness()
    h.add(create_sequence("a", prompt, greedy(10, stop=(stop,))))
    h.run()
    assert h.text("a") == text[: text.index(stop)]
    assert h.final("a").finish_reason is FinishReason.STOP
    assert all(stop not in e.text for e in h.events["a"])


def test_stop_token_ids_and_eos_end_the_sequence_with_stop():
    [prompt] = create_prompts(1)
    free = reference(prompt, 8)
    stop_id = free[3]
    h = Harness(eos_at=len(prompt) + 2)
    h.add(create_sequence("ids", prompt, greedy(8, stop_token_ids=(stop_id,))))
    h.run()
    assert reference(prompt, 8, eos_at=len(prompt) + 2)[-1] == EOS
    assert h.tokens("ids") == reference(prompt, 3, eos_at=len(prompt) + 2)
    assert h.final("ids").finish_reason is FinishReason.STOP
    h2 = Harness()
    h2.add(create_sequence("ids", prompt, greedy(8, stop_token_ids=(stop_id,))))
    h2.run()
    assert h2.tokens("ids") == free[: free.index(stop_id) + 1]
    assert h2.final("ids").finish_reason is FinishReason.STOP


@pytest.mark.parametrize(("min_tokens", "expected"), [(0, 3), (5, 6)])
def test_min_tokens_holds_eos_back(min_tokens, expected):
    [prompt] = create_prompts(1)
    h = Harness(eos_at=len(prompt) + 2)  # the model wants EOS as its third token, and at every step after
    h.add(create_sequence("a", prompt, greedy(20, min_new_tokens=min_tokens)))
    h.run()
    tokens = h.tokens("a")
    assert len(tokens) == expected and tokens[-1] == EOS and EOS not in tokens[:-1]
    assert h.final("a").finish_reason is FinishReason.STOP


def test_ignore_eos_runs_to_max_tokens():
    [prompt] = create_prompts(1)
    h = Harness(eos_at=len(prompt) + 2)
    h.add(create_sequence("a", prompt, greedy(7, ignore_eos=True)))
    h.run()
    assert len(h.tokens("a")) == 7 and h.final("a").finish_reason is FinishReason.LENGTH


def test_a_prefill_failure_ends_that_request_with_an_error_and_the_core_goes_on():
    h = Harness()
    pa, pb = create_prompts(2)
    h.runner.fail_next("prefill")
    h.add(create_sequence("a", pa, greedy(4)), create_sequence("b", pb, greedy(4)))
    h.run()
    final = h.final("a")
    assert final.finish_reason is FinishReason.ERROR and "injected prefill failure" in final.error
    assert h.tokens("a") == [] and h.tokens("b") == reference(pb, 4)
    assert h.runner.free


def test_a_decode_failure_ends_the_whole_batch_with_an_error_and_the_next_request_is_served():
    h = Harness(prefill_chunk=64)
    pa, pb, pc = create_prompts(3)
    a, b = create_sequence("a", pa, greedy(9)), create_sequence("b", pb, greedy(9))
    for seq in (a, b):
        h.add(seq)
        h.step_until_running(seq)
    h.runner.fail_next("decode")
    h.step()
    for rid in ("a", "b"):
        assert h.final(rid).finish_reason is FinishReason.ERROR
        assert "the model runner failed: InjectedFailure" in h.final(rid).error
    assert h.runner.free and not h.scheduler.busy
    h.add(create_sequence("c", pc, greedy(4)))
    h.run()
    assert h.tokens("c") == reference(pc, 4)


def test_many_copies_of_one_prompt_in_one_batch_each_get_the_reference():
    """n > 1: the same prompt submitted several times decodes side by side with the same greedy output."""
    h = Harness(max_running=4, prefill_chunk=3)
    [prompt] = create_prompts(1, length=7)
    h.add(*[create_sequence(f"n{i}", prompt, greedy(16)) for i in range(4)])
    h.run()
    assert ("decode", 4) in h.runner.calls
    assert all(h.tokens(f"n{i}") == reference(prompt, 16) for i in range(4))


def test_seeded_sampling_does_not_depend_on_the_batch():
    [prompt] = create_prompts(1)
    params = SamplingParams(max_new_tokens=8, temperature=5.0, seed=7)
    alone = Harness()
    alone.add(create_sequence("s", prompt, params))
    alone.run()
    crowded = Harness(prefill_chunk=2)
    crowded.add(*[create_sequence(f"o{i}", p, greedy(8)) for i, p in enumerate(create_prompts(3, length=9))])
    crowded.add(create_sequence("s", prompt, params))
    crowded.run()
    assert crowded.tokens("s") == alone.tokens("s")
    assert alone.tokens("s") != reference(prompt, 8)  # temperature 5 on these logits does wander


def test_a_grammar_row_a_logit_bias_row_and_a_plain_row_share_decode_batches():
    h = Harness(max_running=4, prefill_chunk=16)
    prompts = create_prompts(3)
    plain = create_sequence("plain", prompts[0], greedy(8))
    biased = create_sequence("biased", prompts[1], greedy(8, logit_bias=((9, 100.0),)))
    grammar = Grammar(GrammarKind.REGEX, "[dg]{5}")
    shaped = create_sequence("grammar", prompts[2], greedy(8, grammar=grammar))
    shaped.matcher = fake_grammars().matcher(grammar)
    h.add(plain, biased, shaped)
    h.run()
    assert h.tokens("plain") == reference(prompts[0], 8)
    assert h.tokens("biased") == [9] * 8
    assert h.tokens("grammar") == constrained_reference(prompts[2], 5)
    assert re.fullmatch("[dg]{5}", h.text("grammar")) and h.final("grammar").finish_reason is FinishReason.STOP
    assert ("decode", 3) in h.runner.calls  # the three rows were sampled from one batch
    assert h.observer.masks and set(h.observer.masks) == {1}  # only the grammar row paid for a mask
    assert h.runner.free


def test_grammar_rows_apart_in_the_batch_match_their_solo_runs_and_report_raw_logprobs():
    grammar = Grammar(GrammarKind.REGEX, "[dg]{5}")
    prompts = create_prompts(4)

    def constrained(name: str, prompt: list[int], **kw):
        seq = create_sequence(name, prompt, greedy(8, grammar=grammar, **kw))
        seq.matcher = fake_grammars().matcher(grammar)
        return seq

    h = Harness(max_running=4, prefill_chunk=16)
    # rows 0 and 2 constrained, 1 and 3 plain: the masks land on rows that are not one run
    # with logprobs the grammar rows are masked every step (filled while the runner runs), not only when refused
    h.add(constrained("g0", prompts[0], logprobs=True), create_sequence("p1", prompts[1], greedy(8)))
    h.add(constrained("g2", prompts[2], logprobs=True, top_logprobs=1), create_sequence("p3", prompts[3], greedy(8)))
    h.run()
    assert h.tokens("g0") == constrained_reference(prompts[0], 5)
    assert h.tokens("g2") == constrained_reference(prompts[2], 5)
    assert h.tokens("p1") == reference(prompts[1], 8) and h.tokens("p3") == reference(prompts[3], 8)
    first = next(e for e in h.events["g2"] if e.logprobs).logprobs[0]
    # the raw model's favourite, which the grammar bans, still tops the reported distribution
    assert first.top[0][0] == reference(prompts[2], 1)[0] != first.token_id
    assert h.observer.masks and max(h.observer.masks) == 2  # both grammar rows in one fill


def test_a_greedy_grammar_row_is_masked_only_when_the_grammar_refuses_its_favourite():
    h = Harness()
    [prompt] = create_prompts(1)
    anything = Grammar(GrammarKind.REGEX, "[a-z]*")  # the fake model's tokens are letters: never refused
    seq = create_sequence("free", prompt, greedy(6, grammar=anything))
    seq.matcher = fake_grammars().matcher(anything)
    h.add(seq)
    h.run()
    assert h.tokens("free") == reference(prompt, 6) and h.observer.masks == []
