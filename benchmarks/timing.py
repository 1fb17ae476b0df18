"""Timings of generated streams, and the per-repetition figures derived from them. Pure functions.

All times are seconds on one monotonic clock, relative to the moment the request was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from benchmarks.stats import percentile


@dataclass(frozen=True, slots=True)
class StreamTiming:
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

    @staticmethod
    def from_dict(data: dict) -> StreamTiming:
        return StreamTiming(data["prompt_id"], tuple(data["token_times"]), int(data["tokens"]))

    def as_dict(self) -> dict:
        return {"prompt_id": self.prompt_id, "token_times": list(self.token_times), "tokens": self.tokens}


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
