"""Raw stream timings to per-repetition figures, paired ratios, targets and the report, on fixed inputs."""

import pytest

from benchmarks.drivers import Burst
from benchmarks.figures import Measured, burst_vs_single, figures, single_vs
from benchmarks.timing import StreamTiming, burst_rep, check_stream, single_stream_rep

LONG = {"long"}


def stream(prompt_id, ttft, gap, tokens):
    return StreamTiming(prompt_id, tuple(ttft + gap * i for i in range(tokens)), tokens)


def test_stream_timing_derived_values():
    t = StreamTiming("p", (0.5, 0.6, 0.8, 0.9), 4)
    assert t.ttft == 0.5
    assert t.gaps == pytest.approx([0.1, 0.2, 0.1])
    assert t.decode_span == pytest.approx(0.4)
    assert StreamTiming.from_dict(t.as_dict()) == t


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
