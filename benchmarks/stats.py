"""Statistics, pure functions on fixed numbers: raw stream timings -> per-repetition figures -> medians
with their spread and ratios paired repetition by repetition.

All times are seconds on one monotonic clock, relative to the moment the request was sent. A ratio
against the baseline is taken repetition by repetition (ours_i / torch_i, both measured in the same
round), then summarized: the median of ratios, not the ratio of medians.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import msgspec
import numpy as np

SINGLE_FIELDS = ("decode_tps", "ttft_short_s", "ttft_long_s", "itl_p50_s", "itl_p95_s")
BURST_FIELDS = ("aggregate_tps", "ttft_p50_s", "ttft_p95_s")


class StreamTiming(msgspec.Struct, frozen=True):
    """One request: when each token (or streamed chunk carrying tokens) arrived."""

    prompt_id: str
    token_times: tuple[float, ...]  # [chunks] arrival of each token, from the request start
    tokens: int  # tokens generated (may exceed len(token_times) when a chunk carries several)

    @property
    def ttft(self) -> float:
        return self.token_times[0]

    @property
    def end(self) -> float:
        return self.token_times[-1]

    @property
    def gaps(self) -> list[float]:
        """Inter-token latencies [chunks - 1]."""
        return [b - a for a, b in pairwise(self.token_times)]

    @property
    def decode_span(self) -> float:
        """First token to last token: decoding only, the prefill excluded."""
        return self.token_times[-1] - self.token_times[0]


class Summary(msgspec.Struct, frozen=True):
    """Median of repetitions with the extremes beside it; `values` keeps the repetitions in run order."""

    median: float
    min: float
    max: float
    n: int
    values: tuple[float, ...]


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of repetitions; raises on an empty list or a NaN (a broken measurement)."""
    if not values:
        raise ValueError("summary of no values")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"NaN among measured values {list(values)}")
    return Summary(median(values), float(min(values)), float(max(values)), len(values), tuple(float(v) for v in values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    return float(np.percentile(values, q))


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


def check_stream(timing: StreamTiming, expected_tokens: int, who: str) -> None:
    """Raise if a stream is not the full, ordered run of tokens that was asked for (EOS is ignored)."""
    if timing.tokens != expected_tokens:
        raise ValueError(f"{who}: {timing.prompt_id} produced {timing.tokens} tokens, expected {expected_tokens}")
    if len(timing.token_times) < 2:
        raise ValueError(f"{who}: {timing.prompt_id} arrived in {len(timing.token_times)} chunk(s); cannot time decode")
    if any(b < a for a, b in pairwise(timing.token_times)):
        raise ValueError(f"{who}: {timing.prompt_id} token times go backwards")


@dataclass(frozen=True, slots=True)
class SingleStreamRep:
    """What one repetition over the prompt set measured for one contestant."""

    decode_tps: float  # sum of decoded tokens after the first / sum of decode spans, over all prompts
    ttft_short_s: float  # mean over the short prompts
    ttft_long_s: float  # mean over the long prompts
    itl_p50_s: float  # over the inter-token gaps of all prompts together
    itl_p95_s: float


def single_stream_rep(timings: Sequence[StreamTiming], long_ids: set[str]) -> SingleStreamRep:
    short = [t.ttft for t in timings if t.prompt_id not in long_ids]
    long = [t.ttft for t in timings if t.prompt_id in long_ids]
    if not short or not long:
        raise ValueError("a repetition needs at least one short and one long prompt")
    gaps = [g for t in timings for g in t.gaps]
    return SingleStreamRep(
        decode_tps=sum(t.tokens - 1 for t in timings) / sum(t.decode_span for t in timings),
        ttft_short_s=sum(short) / len(short),
        ttft_long_s=sum(long) / len(long),
        itl_p50_s=percentile(gaps, 50),
        itl_p95_s=percentile(gaps, 95),
    )


@dataclass(frozen=True, slots=True)
class BurstRep:
    """N clients sent the same request at once; one repetition."""

    clients: int
    aggregate_tps: float  # all tokens of all clients / wall time from the first send to the last token
    ttft_p50_s: float
    ttft_p95_s: float
    wall_s: float


def burst_rep(timings: Sequence[StreamTiming], wall_s: float) -> BurstRep:
    if not timings or wall_s <= 0:
        raise ValueError("a burst needs streams and a positive wall time")
    ttfts = [t.ttft for t in timings]
    return BurstRep(
        clients=len(timings),
        aggregate_tps=sum(t.tokens for t in timings) / wall_s,
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        wall_s=wall_s,
    )


@dataclass(slots=True)
class Burst:
    """N clients sent requests at once: their timings, the wall time to the last token, and the /v1/health
    probes answered meanwhile (HTTP only)."""

    timings: list[StreamTiming]
    wall_s: float
    health_latencies_s: list[float] = field(default_factory=list)
    health_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Measured:
    """Everything one contestant produced during the run, in repetition order."""

    load_s: float | None = None
    peak_rss_bytes: int | None = None
    singles: list[list[StreamTiming]] = field(default_factory=list)  # [rep][prompt]
    bursts: dict[int, list[Burst]] = field(default_factory=dict)  # clients -> [rep]
    error: str | None = None

    def marks(self) -> tuple[int, dict[int, int]]:
        """How many repetitions are recorded so far (see rollback)."""
        return len(self.singles), {n: len(b) for n, b in self.bursts.items()}

    def rollback(self, marks: tuple[int, dict[int, int]]) -> None:
        """Forget what was recorded after `marks`: a round that is thrown away."""
        singles, bursts = marks
        del self.singles[singles:]
        for n in list(self.bursts):
            del self.bursts[n][bursts.get(n, 0) :]
            if not self.bursts[n]:
                del self.bursts[n]


@dataclass(frozen=True, slots=True)
class Figures:
    single_reps: list[SingleStreamRep]
    single: dict[str, Summary]
    burst_reps: dict[int, list[BurstRep]]
    bursts: dict[int, dict[str, Summary]]


def figures(measured: Measured, long_ids: set[str]) -> Figures:
    single_reps = [single_stream_rep(rep, long_ids) for rep in measured.singles]
    single = {name: summarize([getattr(r, name) for r in single_reps]) for name in SINGLE_FIELDS} if single_reps else {}
    burst_reps = {n: [burst_rep(b.timings, b.wall_s) for b in reps] for n, reps in sorted(measured.bursts.items())}
    bursts = {
        n: {name: summarize([getattr(r, name) for r in reps]) for name in BURST_FIELDS}
        for n, reps in burst_reps.items()
        if reps
    }
    return Figures(single_reps, single, burst_reps, bursts)


def paired(ours: Sequence[float], base: Sequence[float], invert: bool = False) -> Summary | None:
    """ours_i / base_i (or base_i / ours_i for latencies, so that > 1 means faster), over the
    repetitions both sides completed; None when either side has none."""
    count = min(len(ours), len(base))
    if count == 0:
        return None
    ours, base = list(ours[:count]), list(base[:count])
    return ratio_summary(base, ours) if invert else ratio_summary(ours, base)


def single_vs(ours: Figures, base: Figures) -> dict[str, Summary | None]:
    """Speed-ups of `ours` over `base` in single-stream figures (> 1: ours is faster)."""

    def values(figs: Figures, name: str) -> list[float]:
        return [getattr(r, name) for r in figs.single_reps]

    return {
        "decode_tps": paired(values(ours, "decode_tps"), values(base, "decode_tps")),
        "ttft_short_s": paired(values(ours, "ttft_short_s"), values(base, "ttft_short_s"), invert=True),
        "ttft_long_s": paired(values(ours, "ttft_long_s"), values(base, "ttft_long_s"), invert=True),
        "itl_p50_s": paired(values(ours, "itl_p50_s"), values(base, "itl_p50_s"), invert=True),
    }


def burst_vs_single(ours: Figures, base: Figures) -> dict[int, Summary | None]:
    """Aggregate tokens/s at each concurrency over the baseline's single-stream decode tokens/s."""
    base_tps = [r.decode_tps for r in base.single_reps]
    return {n: paired([r.aggregate_tps for r in reps], base_tps) for n, reps in ours.burst_reps.items()}


def burst_vs(ours: Figures, base: Figures) -> dict[int, Summary | None]:
    """Aggregate tokens/s of `ours` over `base`'s at each client count both measured (> 1: ours is faster)."""
    return {
        n: paired([r.aggregate_tps for r in reps], [r.aggregate_tps for r in base.burst_reps[n]])
        for n, reps in ours.burst_reps.items()
        if n in base.burst_reps
    }
