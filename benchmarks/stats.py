"""Pure statistics for the report: medians with their spread, percentiles, ratios taken pair by pair."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """Median of repetitions with the extremes beside it; `values` keeps the repetitions in run order."""

    median: float
    min: float
    max: float
    n: int
    values: tuple[float, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["values"] = list(self.values)
        return data


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of repetitions; raises on an empty list or a NaN (a broken measurement)."""
    if not values:
        raise ValueError("summary of no values")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"NaN among measured values {list(values)}")
    return Summary(median(values), float(min(values)), float(max(values)), len(values), tuple(float(v) for v in values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def pairwise_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """ratio_i = numerators[i] / denominators[i]: repetition i of one contestant against repetition i of
    the other, measured back to back, so that a slow spell of the machine hits both sides of a ratio."""
    if len(numerators) != len(denominators):
        raise ValueError(f"cannot pair {len(numerators)} values with {len(denominators)}")
    if not numerators:
        raise ValueError("no pairs")
    if any(d == 0 for d in denominators):
        raise ValueError("a denominator is zero")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def ratio_summary(numerators: Sequence[float], denominators: Sequence[float]) -> Summary:
    """Median (min, max) of the pairwise ratios, not the ratio of medians."""
    return summarize(pairwise_ratios(numerators, denominators))
