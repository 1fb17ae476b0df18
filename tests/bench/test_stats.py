"""The statistics behind every figure of the bench report, on fixed numbers: raw stream timings to
per-repetition figures, medians and percentiles, paired ratios."""

import math

import msgspec
import numpy as np
import pytest

from benchmarks.stats import (
    Burst,
    Measured,
    StreamTiming,
    burst_rep,
    burst_vs_single,
    check_stream,
    figures,
    median,
    pairwise_ratios,
    percentile,
    ratio_summary,
    single_stream_rep,
    single_vs,
    summarize,
)

LONG = {"long"}


@pytest.mark.parametrize(
    ("values", "want"),
    [([3.0], 3.0), ([5.0, 1.0], 3.0), ([9.0, 1.0, 4.0], 4.0), ([4.0, 1.0, 3.0, 100.0], 3.5)],
)
def test_median_odd_and_even_counts(values, want):
    assert median(values) == want


def test_summary_keeps_median_extremes_and_run_order():
    s = summarize([12.0, 10.0, 30.0, 11.0, 9.0])
    assert (s.median, s.min, s.max, s.n) == (11.0, 9.0, 30.0, 5)
    assert s.values == (12.0, 10.0, 30.0, 11.0, 9.0)
    assert msgspec.json.decode(msgspec.json.encode(s)) == {  # as results.json holds it
        "median": 11.0,
        "min": 9.0,
        "max": 30.0,
        "n": 5,
        "values": [12.0, 10.0, 30.0, 11.0, 9.0],
    }


@pytest.mark.parametrize("bad", [[], [1.0, math.nan]])
def test_summary_refuses_empty_or_nan(bad):
    with pytest.raises(ValueError):
        summarize(bad)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q):
    values = [0.013, 0.009, 0.011, 0.050, 0.010, 0.012, 0.0095, 0.2]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges_and_errors():
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ratios_are_taken_pair_by_pair_not_from_medians():
    # the machine slows down in round 2 for both sides: paired ratios stay at 6, the ratio of medians does not
    ours = [120.0, 60.0, 118.0]
    torch = [20.0, 10.0, 19.0]
    assert pairwise_ratios(ours, torch) == pytest.approx([6.0, 6.0, 118.0 / 19.0])
    paired = ratio_summary(ours, torch)
    assert paired.median == pytest.approx(6.0)
    assert paired.min == pytest.approx(6.0)
    assert paired.max == pytest.approx(118.0 / 19.0)
    assert median(ours) / median(torch) == pytest.approx(118.0 / 19.0)  # what unpaired medians would claim


def test_ratios_refuse_unpaired_or_zero():
    with pytest.raises(ValueError):
        pairwise_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        pairwise_ratios([], [])
    with pytest.raises(ValueError):
        pairwise_ratios([1.0], [0.0])


def stream(prompt_id, ttft, gap, tokens):
    return StreamTiming(prompt_id, tuple(ttft + gap * i for i in range(tokens)), tokens)


def test_stream_timing_derived_values():
    t = StreamTiming("p", (0.5, 0.6, 0.8, 0.9), 4)
    assert t.ttft == 0.5
    assert t.gaps == pytest.approx([0.1, 0.2, 0.1])
    assert t.decode_span == pytest.approx(0.4)
    assert msgspec.json.decode(msgspec.json.encode(t), type=StreamTiming) == t


def test_single_stream_rep_pools_prompts():
    timings = [stream("short", 0.05, 0.010, 11), stream("long", 0.50, 0.020, 11)]
    rep = single_stream_rep(timings, LONG)
    # 20 decoded tokens after the first ones, over 0.1 s + 0.2 s
    assert rep.decode_tps == pytest.approx(20 / 0.3)
    assert rep.ttft_short_s == pytest.approx(0.05)
    assert rep.ttft_long_s == pytest.approx(0.50)
    assert rep.itl_p50_s == pytest.approx(0.015)
    assert rep.itl_p95_s == pytest.approx(0.020)


def test_single_stream_rep_needs_both_lengths():
    with pytest.raises(ValueError):
        single_stream_rep([stream("short", 0.05, 0.01, 4)], LONG)


def test_burst_rep_aggregates_all_clients_over_the_wall_time():
    timings = [stream("s", 0.1 * i, 0.01, 10) for i in range(1, 5)]
    rep = burst_rep(timings, wall_s=2.0)
    assert rep.clients == 4
    assert rep.aggregate_tps == pytest.approx(40 / 2.0)
    assert rep.ttft_p50_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    "timing",
    [StreamTiming("p", (0.1, 0.2), 3), StreamTiming("p", (0.1,), 4), StreamTiming("p", (0.2, 0.1, 0.3, 0.4), 4)],
)
def test_check_stream_rejects_short_single_chunk_or_backwards(timing):
    with pytest.raises(ValueError):
        check_stream(timing, 4, "who")


def measured(gaps, wall):
    m = Measured()
    for gap in gaps:
        m.singles.append([stream("short", 0.05, gap, 9), stream("long", 0.4, gap, 9)])
    m.bursts[16] = [Burst([stream("short", 0.1, gap, 9)] * 16, wall) for gap in gaps]
    return m


def test_paired_speedups_use_the_same_repetition():
    torch = figures(measured([0.050, 0.100], 1.0), LONG)  # round 2 is slow for everybody
    ours = figures(measured([0.010, 0.020], 0.5), LONG)
    vs = single_vs(ours, torch)
    assert vs["decode_tps"].values == pytest.approx((5.0, 5.0))
    assert vs["ttft_short_s"].median == pytest.approx(1.0)
    assert vs["itl_p50_s"].median == pytest.approx(5.0)
    agg = burst_vs_single(ours, torch)[16]
    assert agg.values[0] == pytest.approx((16 * 9 / 0.5) / 20.0)
    assert agg.values[1] == pytest.approx((16 * 9 / 0.5) / 10.0)


def test_rollback_forgets_a_whole_round():
    t = StreamTiming("p", (0.1, 0.2), 2)
    m = Measured(singles=[[t]], bursts={1: [Burst([t], 0.2)]})
    before = m.marks()
    m.singles.append([t])
    m.bursts[1].append(Burst([t], 0.3))
    m.bursts[16] = [Burst([t] * 16, 0.5)]
    m.rollback(before)
    assert len(m.singles) == 1 and len(m.bursts[1]) == 1 and 16 not in m.bursts
