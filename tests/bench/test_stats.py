"""The statistics behind every figure of the bench report, on fixed numbers."""

import math

import numpy as np
import pytest

from benchmarks.stats import median, pairwise_ratios, percentile, ratio_summary, summarize


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
    assert s.as_dict() == {"median": 11.0, "min": 9.0, "max": 30.0, "n": 5, "values": [12.0, 10.0, 30.0, 11.0, 9.0]}


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
