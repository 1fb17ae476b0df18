"""The prefix cache on the fake runner (milliseconds): hits from snapshots and from running slots, partial hits,
salts, the minimum hit, eviction under a tiny budget, n > 1. The fake checks that every copied or restored
prefix lands in a free slot and that the tokens it carries give the reference output."""

from __future__ import annotations

from app.engine.params import Grammar, GrammarKind, SamplingParams
from app.engine.prefix_cache import MIN_REUSE_TOKENS
from app.engine.request import Sequence
from tests.unit.fakes import constrained_reference, create_prompts, create_sequence, fake_grammars, reference
from tests.unit.harness import Harness

P = 40  # prompt length: above MIN_REUSE_TOKENS


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, ignore_eos=True)


def salted(request_id: str, prompt: list[int], n: int = 6, salt: str = "") -> Sequence:
    seq = create_sequence(request_id, prompt, greedy(n))
    seq.cache_salt = salt
    return seq


def serve(h: Harness, *seqs: Sequence) -> None:
    """Run each sequence to its end, one after the other."""
    for seq in seqs:
        h.add(seq)
        h.run()


def calls(h: Harness, kind: str) -> list[tuple]:
    return [c for c in h.runner.calls if c[0] == kind]


def cached(h: Harness, request_id: str) -> int:
    return h.final(request_id).usage.cached_tokens


def test_the_same_prompt_again_restores_all_but_its_last_position():
    h = Harness(cache_tokens=1000)
    [prompt] = create_prompts(1, length=P)
    serve(h, salted("cold", prompt), salted("warm", prompt))
    assert cached(h, "cold") == 0 and cached(h, "warm") == P - 1
    assert calls(h, "restore") == [("restore", 0, P - 1)]
    assert calls(h, "prefill")[-1] == ("prefill", 0, P - 1, 1)  # only the last position, for its logits
    assert h.tokens("warm") == h.tokens("cold") == reference(prompt, 6)
    assert h.observer.lookups == [(P, 0), (P, P - 1)]
    assert h.runner.free and h.cache.cached_tokens == sum(s.length for s in h.runner.held_snapshots)


def test_with_min_rows_two_a_hit_leaves_two_positions_to_compute():
    h = Harness(cache_tokens=1000, min_rows=2)
    [prompt] = create_prompts(1, length=P)
    serve(h, salted("cold", prompt), salted("warm", prompt))
    assert cached(h, "warm") == P - 2
    assert calls(h, "prefill")[-1] == ("prefill", 0, P - 2, 2)  # a lone row would take another kernel
    assert h.tokens("warm") == h.tokens("cold") == reference(prompt, 6)


def test_a_shared_head_and_a_next_turn_are_partial_hits():
    h = Harness(cache_tokens=1000)
    [first] = create_prompts(1, length=P)
    other = [*first[:36], *create_prompts(2, length=10)[1]]  # 36 tokens in common, then a different tail
    serve(h, salted("first", first), salted("other", other))
    assert cached(h, "other") == 36 and h.tokens("other") == reference(other, 6)
    turn2 = [*first, *h.tokens("first"), 5, 6, 7]  # the first exchange, then a new question
    serve(h, salted("turn2", turn2))
    # the prompt and the output fed back (all but the last token, never fed) came from the first snapshot
    assert cached(h, "turn2") == P + 6 - 1 and h.tokens("turn2") == reference(turn2, 6)


def test_hits_shorter_than_the_minimum_are_not_taken():
    h = Harness(cache_tokens=1000)
    [first] = create_prompts(1, length=P)
    short = [*first[: MIN_REUSE_TOKENS - 1], *create_prompts(2, length=10)[1]]
    serve(h, salted("first", first), salted("short", short))
    assert cached(h, "short") == 0 and not calls(h, "restore") and not calls(h, "copy")
    assert h.tokens("short") == reference(short, 6)


def test_salts_never_share_and_the_same_salt_does():
    h = Harness(cache_tokens=1000)
    [prompt] = create_prompts(1, length=P)
    serve(h, salted("a", prompt, salt="tenant-a"), salted("b", prompt, salt="tenant-b"), salted("none", prompt))
    assert (cached(h, "a"), cached(h, "b"), cached(h, "none")) == (0, 0, 0)
    serve(h, salted("a2", prompt, salt="tenant-a"))
    assert cached(h, "a2") == P - 1 and h.tokens("a2") == h.tokens("a") == h.tokens("b")


def test_a_tiny_budget_evicts_the_least_recently_used_and_closes_it():
    h = Harness(cache_tokens=100)  # two snapshots of 45 positions fit, not three
    prompts = create_prompts(3, length=P)
    serve(h, *[salted(f"p{i}", p) for i, p in enumerate(prompts)])
    held = h.runner.held_snapshots
    assert len(h.runner.snapshots) == 3 and len(held) == 2 and h.runner.snapshots[0].closed
    assert h.cache.cached_tokens == sum(s.length for s in held) <= 100
    serve(h, salted("p0-again", prompts[0]), salted("p2-again", prompts[2]))
    assert cached(h, "p0-again") == 0 and cached(h, "p2-again") == P - 1
    assert h.tokens("p0-again") == reference(prompts[0], 6) and h.tokens("p2-again") == reference(prompts[2], 6)
    assert h.cache.cached_tokens <= 100


def test_the_budget_counts_the_running_slots():
    h = Harness(cache_tokens=50, prefill_chunk=64)
    pa, pb = create_prompts(2, length=P)
    a, b = salted("a", pa, n=20), salted("b", pb, n=4)
    h.add(a)
    h.step_until_running(a)
    h.add(b)
    h.step_until_running(b)
    h.run()
    # b left while a's slot held 44 positions (its prompt and 4 tokens fed back): only 6 fitted beside it;
    # a left with 59 and had the whole budget, its first 50 pushed b's 6 out
    assert [s.length for s in h.runner.snapshots] == [50 - (P + 4), 50]
    assert [s.length for s in h.runner.held_snapshots] == [50] and h.cache.cached_tokens == 50
    assert h.tokens("a") == reference(pa, 20) and h.tokens("b") == reference(pb, 4)


def test_n_copies_of_one_prompt_prefill_it_once_and_copy_from_the_running_one():
    h = Harness(cache_tokens=1000, prefill_chunk=16)
    [prompt] = create_prompts(1, length=P)
    h.add(*[salted(f"n{i}", prompt, n=12) for i in range(3)])
    h.run()
    assert [cached(h, f"n{i}") for i in range(3)] == [0, P - 1, P - 1]
    assert [c[1:] for c in calls(h, "copy")] == [(0, 1, P - 1), (0, 2, P - 1)]
    assert sum(c[3] for c in calls(h, "prefill")) == P + 2  # one whole prompt, then one position each
    assert all(h.tokens(f"n{i}") == reference(prompt, 12) for i in range(3))
    assert ("decode", 3) in h.runner.calls and h.runner.free


def test_an_error_leaves_nothing_in_the_cache():
    h = Harness(cache_tokens=1000)
    [prompt] = create_prompts(1, length=P)
    h.runner.fail_next("prefill")
    serve(h, salted("failed", prompt), salted("next", prompt))
    assert h.final("failed").error and cached(h, "next") == 0
    assert h.tokens("next") == reference(prompt, 6)


def test_a_constrained_request_served_from_the_cache_keeps_its_grammar():
    h = Harness(cache_tokens=1000)
    [prompt] = create_prompts(1, length=P)
    grammar = Grammar(GrammarKind.REGEX, "[dg]{5}")
    grammars = fake_grammars()
    seqs = [create_sequence(rid, prompt, SamplingParams(max_new_tokens=8, grammar=grammar)) for rid in ("cold", "warm")]
    for seq in seqs:
        seq.matcher = grammars.matcher(grammar)
    serve(h, salted("plain", prompt), *seqs)
    assert cached(h, "cold") == P - 1 and cached(h, "warm") > 0  # the plain run's prompt, then the cold one's
    assert h.tokens("cold") == h.tokens("warm") == constrained_reference(prompt, 5)
    assert h.tokens("plain") == reference(prompt, 6) and h.runner.free
