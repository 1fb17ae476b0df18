"""The pure sampler on fixed logits rows: support, mass and frequencies match the requested distribution."""

import numpy as np
import pytest

from app.engine import sampler
from app.engine.params import SamplingParams

V = 1000


def fixed_logits(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(V) * 3).astype(np.float32)


def draw(logits, params, n, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([sampler.sample(logits, params, rng) for _ in range(n)])


def test_greedy_is_argmax_for_zero_temperature_and_top_k_one():
    logits = fixed_logits()
    assert sampler.sample(logits, SamplingParams(temperature=0.0), np.random.default_rng(0)) == logits.argmax()
    assert sampler.sample(logits, SamplingParams(temperature=1.0, top_k=1), np.random.default_rng(0)) == logits.argmax()
    rows = np.stack([fixed_logits(s) for s in range(4)])
    assert sampler.greedy(rows).tolist() == rows.argmax(-1).tolist()


def test_top_k_support_is_exactly_the_k_largest():
    logits = fixed_logits()
    tokens = draw(logits, SamplingParams(temperature=1.0, top_k=5), 3000)
    assert set(tokens.tolist()) == set(np.argsort(-logits)[:5].tolist())


def test_top_p_keeps_the_smallest_prefix_reaching_the_mass():
    logits = fixed_logits(1)
    probs = sampler.softmax(logits.astype(np.float64))
    order = np.argsort(-probs)
    need = int(np.searchsorted(np.cumsum(probs[order]), 0.5)) + 1
    ids, cand = sampler.candidate_probs(logits, SamplingParams(temperature=1.0, top_p=0.5))
    assert sorted(ids.tolist()) == sorted(order[:need].tolist())
    assert cand.sum() == pytest.approx(1.0)
    assert probs[order[: need - 1]].sum() < 0.5 <= probs[order[:need]].sum()


def test_sample_frequencies_follow_the_distribution():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    tokens = draw(logits, SamplingParams(temperature=1.0), 20000, seed=3)
    freq = np.bincount(tokens, minlength=4) / len(tokens)
    assert np.allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.015)


def test_temperature_sharpens_and_flattens():
    logits = np.log(np.array([0.6, 0.4], np.float32))
    cold = np.bincount(draw(logits, SamplingParams(temperature=0.25), 8000), minlength=2) / 8000
    hot = np.bincount(draw(logits, SamplingParams(temperature=4.0), 8000), minlength=2) / 8000
    expected_cold = 0.6**4 / (0.6**4 + 0.4**4)
    assert cold[0] == pytest.approx(expected_cold, abs=0.02)
    assert 0.5 < hot[0] < 0.56


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    logits = np.log(np.array([0.5, 0.3, 0.1, 0.06, 0.04], np.float32))
    ids, probs = sampler.candidate_probs(logits, SamplingParams(temperature=1.0, min_p=0.19))
    assert sorted(ids.tolist()) == [0, 1, 2]
    assert probs.sum() == pytest.approx(1.0)


def test_same_seed_same_tokens_different_seed_different_tokens():
    logits = fixed_logits()
    params = SamplingParams(temperature=1.0)
    assert draw(logits, params, 50, seed=7).tolist() == draw(logits, params, 50, seed=7).tolist()
    assert draw(logits, params, 50, seed=7).tolist() != draw(logits, params, 50, seed=8).tolist()


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = np.array([2.0, -2.0, 1.0], np.float32)
    seen = np.array([True, True, False])
    sampler.apply_penalties(logits, SamplingParams(repetition_penalty=2.0), None, seen)
    assert logits.tolist() == [1.0, -4.0, 1.0]


def test_presence_and_frequency_penalties_follow_openai():
    logits = np.zeros(3, np.float32)
    counts = np.array([0, 1, 3], np.int32)
    sampler.apply_penalties(logits, SamplingParams(presence_penalty=0.5, frequency_penalty=0.25), counts, None)
    assert logits.tolist() == pytest.approx([0.0, -0.75, -1.25])


def test_logprobs_are_normalised_and_sorted():
    logits = fixed_logits(2)
    chosen, top = sampler.logprobs(logits, int(logits.argmax()), 5)
    assert [t for t, _ in top] == np.argsort(-logits)[:5].tolist()
    assert chosen == pytest.approx(top[0][1])
    full = np.log(sampler.softmax(logits.astype(np.float64)))
    assert [lp for _, lp in top] == pytest.approx(np.sort(full)[::-1][:5].tolist(), abs=1e-5)
