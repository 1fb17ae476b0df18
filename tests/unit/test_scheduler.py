"""Scheduler bookkeeping with fake sequences: admission, chunked prefill, contiguous slots."""

import numpy as np

from app.engine.detokenizer import IncrementalDetokenizer
from app.engine.params import SamplingParams
from app.engine.request import RequestStatus, Sequence
from app.engine.scheduler import SOLO_PREFILL_CHUNK, Move, Scheduler, chunk_end, kv_reservation
from app.engine.stopping import StoppingCriteria


def make_seq(name: str, prompt_len: int = 10, max_new_tokens: int = 16) -> Sequence:
    params = SamplingParams(max_new_tokens=max_new_tokens)
    return Sequence(
        name,
        list(range(prompt_len)),
        params,
        StoppingCriteria(params, [0]),
        IncrementalDetokenizer(lambda ids: ""),
        np.random.default_rng(0),
    )


def admit(sched: Scheduler, seq: Sequence) -> None:
    """Schedule until `seq` has prefilled its whole prompt (in chunks when others run)."""
    while True:
        plan = sched.schedule()
        assert plan.prefill.seq is seq
        seq.computed = plan.prefill.end
        if plan.prefill.completes_prompt:
            break
    sched.prefill_done(seq)
    seq.output_ids.append(1)


def test_alone_the_prompt_prefills_at_once_beside_others_in_chunks():
    sched = Scheduler(max_running=4, prefill_chunk=8)
    a, b = make_seq("a", 20), make_seq("b", 20)
    sched.add(a)
    sched.add(b)
    admit(sched, a)
    plan = sched.schedule()
    assert plan.decode == [a]
    assert (plan.prefill.seq, plan.prefill.start, plan.prefill.end) == (b, 0, 8)
    assert b.slot == 1 and b.status is RequestStatus.PREFILLING


def test_running_is_bounded_and_the_rest_waits():
    sched = Scheduler(max_running=2, prefill_chunk=64)
    seqs = [make_seq(str(i)) for i in range(3)]
    for s in seqs:
        sched.add(s)
    admit(sched, seqs[0])
    admit(sched, seqs[1])
    plan = sched.schedule()
    assert plan.prefill is None and len(plan.decode) == 2
    assert seqs[2].status is RequestStatus.WAITING


def test_finish_moves_the_last_sequence_into_the_gap_and_the_prefill_after_it():
    sched = Scheduler(max_running=4, prefill_chunk=4)
    a, b, c, d = (make_seq(n, 8) for n in "abcd")
    for s in (a, b, c):
        sched.add(s)
        admit(sched, s)
    for s in (a, b, c):
        s.computed = 9
    sched.add(d)
    sched.schedule()  # d starts prefilling in slot 3
    d.computed = 4
    moves = sched.finish(a)
    assert moves == [Move(src=2, dst=0, length=9), Move(src=3, dst=2, length=4)]
    assert [s.slot for s in sched.running] == [0, 1]
    assert sched.running == [c, b] and d.slot == 2
    assert a.status.finished and a.slot == -1


def test_finishing_the_last_or_a_waiting_sequence_moves_nothing():
    sched = Scheduler(max_running=4, prefill_chunk=4)
    a, b, w = make_seq("a"), make_seq("b"), make_seq("w")
    for s in (a, b):
        sched.add(s)
        admit(sched, s)
    sched.add(w)
    assert sched.finish(b) == []
    assert sched.finish(w) == [] and w not in sched.waiting


def test_short_prompts_share_one_step_within_the_prefill_budget():
    sched = Scheduler(max_running=4, prefill_chunk=16)
    a, b, c, d = make_seq("a", 30), make_seq("b", 6), make_seq("c", 6), make_seq("d", 6)
    for seq in (a, b, c, d):
        sched.add(seq)
    admit(sched, a)
    plan = sched.schedule()
    assert plan.prefill.seq is b and plan.decode == [a]
    spent, admitted = 0, []
    chunk = plan.prefill
    while chunk is not None:
        chunk.seq.computed = chunk.end
        spent += chunk.end - chunk.start
        if chunk.completes_prompt:
            sched.prefill_done(chunk.seq)
            admitted.append((chunk.seq.request_id, chunk.seq.slot, chunk.end - chunk.start))
        chunk = sched.next_prefill(spent, decoding=True)
    # 6 + 6 + 4 of d: the budget of 16 is spent, d goes on next step in slot 3
    assert admitted == [("b", 1, 6), ("c", 2, 6)]
    assert sched.prefilling is d and d.slot == 3 and d.computed == 4
    assert sched.next_prefill(0, decoding=False) is None


def test_the_kv_budget_admits_fewer_rows_than_max_running():
    # each reserves 10 + 16 = 26 positions: 3 fit in 80, the fourth waits although max_running is 8
    sched = Scheduler(max_running=8, prefill_chunk=64, kv_budget_tokens=80)
    seqs = [make_seq(str(i)) for i in range(5)]
    for s in seqs:
        sched.add(s)
    for s in seqs[:3]:
        admit(sched, s)
    plan = sched.schedule()
    assert plan.prefill is None and plan.decode == seqs[:3]
    assert sched.reserved_tokens == 3 * kv_reservation(seqs[0]) == 78
    assert [s.status for s in seqs[3:]] == [RequestStatus.WAITING] * 2
    sched.finish(seqs[1])  # its reservation goes back: the next one fits
    assert sched.reserved_tokens == 52
    assert sched.schedule().prefill.seq is seqs[3]


def test_reservations_count_whole_kv_pages():
    # 10 + 16 = 26 positions take two pages of 16 positions: 32 reserved, so two fit in 64 and the third waits
    assert kv_reservation(make_seq("a"), page_tokens=16) == 32
    assert kv_reservation(make_seq("b", 16, max_new_tokens=16), page_tokens=16) == 32
    sched = Scheduler(max_running=8, prefill_chunk=64, kv_budget_tokens=64, kv_page_tokens=16)
    seqs = [make_seq(str(i)) for i in range(3)]
    for s in seqs:
        sched.add(s)
    for s in seqs[:2]:
        admit(sched, s)
    assert sched.schedule().prefill is None and sched.reserved_tokens == 64
    sched.finish(seqs[0])
    assert sched.reserved_tokens == 32 and sched.schedule().prefill.seq is seqs[2]


def test_a_request_larger_than_the_budget_runs_alone_and_nobody_overtakes_it():
    sched = Scheduler(max_running=8, prefill_chunk=64, kv_budget_tokens=50)
    small, big, after = make_seq("small"), make_seq("big", 40, max_new_tokens=100), make_seq("after", 4, 4)
    for s in (small, big, after):
        sched.add(s)
    admit(sched, small)
    assert sched.schedule().prefill is None  # big does not fit beside small; `after` would, but waits its turn
    assert after.status is RequestStatus.WAITING
    sched.finish(small)
    assert sched.reserved_tokens == 0
    admit(sched, big)  # alone, over the budget
    assert sched.running == [big] and sched.reserved_tokens == 140


def test_without_a_budget_only_max_running_bounds_the_batch():
    sched = Scheduler(max_running=3, prefill_chunk=64)
    seqs = [make_seq(str(i), 500, 1000) for i in range(4)]
    for s in seqs:
        sched.add(s)
    for s in seqs[:3]:
        admit(sched, s)
    assert sched.schedule().prefill is None and len(sched.running) == 3


def test_a_long_prompt_alone_is_prefilled_in_bounded_calls():
    sched = Scheduler(max_running=4, prefill_chunk=64)
    seq = make_seq("long", 2 * SOLO_PREFILL_CHUNK + 10)
    sched.add(seq)
    ends = []
    while seq.status is not RequestStatus.RUNNING:
        chunk = sched.schedule().prefill
        seq.computed = chunk.end
        ends.append(chunk.end)
        if chunk.completes_prompt:
            sched.prefill_done(seq)
    assert ends == [SOLO_PREFILL_CHUNK, 2 * SOLO_PREFILL_CHUNK, 2 * SOLO_PREFILL_CHUNK + 10]


def test_chunk_end_keeps_every_call_and_what_it_leaves_at_least_least_tokens():
    assert [chunk_end(0, 10, 4), chunk_end(8, 10, 4), chunk_end(0, 1, 4)] == [4, 10, 1]  # least 1: the budget
    assert chunk_end(0, 10, 9, least=2) == 8  # not 9: the last call would be one token
    assert chunk_end(8, 10, 1, least=2) == 10  # a budget of one still takes two
    assert chunk_end(0, 3, 2, least=2) == 3  # two then one is not allowed, one then two neither: all three
    assert chunk_end(0, 1, 4, least=2) == 1  # a one-token prompt goes whole
    for total in range(1, 40):
        for budget in range(1, 12):
            start, calls = 0, []
            while start < total:
                end = chunk_end(start, total, budget, least=2)
                calls.append(end - start)
                start = end
            assert sum(calls) == total and (total < 2 or min(calls) >= 2), (total, budget, calls)
            assert max(calls) <= max(budget, 2) + 2, (total, budget, calls)


def test_with_min_chunk_two_no_prompt_call_is_one_token_beside_running_streams():
    sched = Scheduler(max_running=4, prefill_chunk=5, min_chunk=2)
    a, b = make_seq("a", 6), make_seq("b", 11)
    sched.add(a)
    admit(sched, a)
    sched.add(b)
    sizes = []
    while b.status is not RequestStatus.RUNNING:
        chunk = sched.schedule().prefill
        b.computed = chunk.end
        sizes.append(chunk.end - chunk.start)
        if chunk.completes_prompt:
            sched.prefill_done(b)
    assert sizes == [5, 4, 2]  # 5, 5, 1 with single-row calls allowed
