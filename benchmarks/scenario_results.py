"""Figures of the scenarios (benchmarks/scenarios.py), pure functions of their results: per repetition,
then medians with their spread and with/without ratios paired repetition by repetition."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from benchmarks.load import StreamResult
from benchmarks.stats import Summary, burst_rep, median, percentile, ratio_summary, summarize

Rep = tuple[list[StreamResult], float]  # one repetition of a scenario: its results and its wall time


class CacheFigures(msgspec.Struct):
    """One server (cache on or off) under issue 12's loads."""

    chat_ttft_s: Summary  # median TTFT of the chat's turns 2..N
    shared_ttft_p50_s: Summary
    short_ttft_p50_s: Summary
    short_aggregate_tps: Summary
    chat_cached_share: float | None  # cached prompt tokens / prompt tokens over turns 2..N, when reported
    peak_rss_bytes: int | None


class CacheRatios(msgspec.Struct):
    """With the cache over without it, paired per repetition (< 1: the cache is faster for TTFT)."""

    chat_ttft: Summary
    shared_ttft_p50: Summary
    short_ttft_p50: Summary
    short_aggregate_tps: Summary  # > 1: more throughput with the cache


class StructuredFigures(msgspec.Struct):
    """Issue 11's loads: decode with a JSON schema against the same request unconstrained."""

    single_schema_tps: Summary
    single_plain_tps: Summary
    single_ratio: Summary  # schema / no schema, paired per repetition
    many_schema_tps: Summary  # aggregate over the concurrent streams
    many_plain_tps: Summary
    many_ratio: Summary
    clients: int
    schema_tokens: Summary  # tokens a constrained stream produced (the schema ends it)


class GrammarSpeed(msgspec.Struct, frozen=True):
    """Compile and mask times over issue 11's test schemas, in the bench process (benchmarks/grammar_speed.py)."""

    schemas: int
    compile_p50_ms: float  # cold: a fresh compiler per repetition, so no schema is a cache hit
    compile_p99_ms: float
    mask_p50_us: float  # one matcher's mask, along a greedy walk through each schema
    mask_p99_us: float
    batch_mask_p50_us: float  # 16 matchers' masks in one call (the engine's per-step fill)
    apply_p50_us: float  # the batched -inf of 16 rows of logits [16, V]


class ScenarioResults(msgspec.Struct):
    counts: dict[str, int]
    cache_on: CacheFigures
    cache_off: CacheFigures
    cache_ratios: CacheRatios
    structured: StructuredFigures
    grammar: GrammarSpeed | None = None


def decode_tps(results: Sequence[StreamResult]) -> float:
    """Tokens after the first over the time from the first token to the last, summed over the streams."""
    span = sum(r.timing.decode_span for r in results)
    if span <= 0:
        raise ValueError("a stream needs two timed chunks to measure decode")
    return sum(r.timing.tokens - 1 for r in results) / span


def later_turns_ttft(rep: Rep) -> float:
    """Median TTFT of every turn after the first (each timed from its own send)."""
    later = rep[0][1:]
    if not later:
        raise ValueError("a multi-turn chat needs at least two turns")
    return median([r.timing.ttft for r in later])


def ttft_p50(rep: Rep) -> float:
    return percentile([r.timing.ttft for r in rep[0]], 50)


def aggregate_tps(rep: Rep) -> float:
    return burst_rep([r.timing for r in rep[0]], rep[1]).aggregate_tps


def cached_share(reps: Sequence[Rep]) -> float | None:
    later = [r for results, _ in reps for r in results[1:]]
    if not later or any(r.cached_tokens is None or not r.prompt_tokens for r in later):
        return None
    return sum(r.cached_tokens or 0 for r in later) / sum(r.prompt_tokens or 0 for r in later)


def cache_figures(loads: dict[str, list[Rep]], names: Sequence[str], rss: int | None) -> CacheFigures:
    chat, shared, short = (loads[n] for n in names)
    return CacheFigures(
        chat_ttft_s=summarize([later_turns_ttft(r) for r in chat]),
        shared_ttft_p50_s=summarize([ttft_p50(r) for r in shared]),
        short_ttft_p50_s=summarize([ttft_p50(r) for r in short]),
        short_aggregate_tps=summarize([aggregate_tps(r) for r in short]),
        chat_cached_share=cached_share(chat),
        peak_rss_bytes=rss,
    )


def cache_ratios(on: dict[str, list[Rep]], off: dict[str, list[Rep]], names: Sequence[str]) -> CacheRatios:
    chat, shared, short = names

    def paired(name: str, figure) -> Summary:
        return ratio_summary([figure(r) for r in on[name]], [figure(r) for r in off[name]])

    return CacheRatios(
        paired(chat, later_turns_ttft), paired(shared, ttft_p50), paired(short, ttft_p50), paired(short, aggregate_tps)
    )


def structured_figures(loads: dict[str, list[Rep]], names: Sequence[str], clients: int) -> StructuredFigures:
    one_schema, one_plain, many_schema, many_plain = (loads[n] for n in names)
    singles = [decode_tps(r[0]) for r in one_schema], [decode_tps(r[0]) for r in one_plain]
    many = [aggregate_tps(r) for r in many_schema], [aggregate_tps(r) for r in many_plain]
    return StructuredFigures(
        single_schema_tps=summarize(singles[0]),
        single_plain_tps=summarize(singles[1]),
        single_ratio=ratio_summary(*singles),
        many_schema_tps=summarize(many[0]),
        many_plain_tps=summarize(many[1]),
        many_ratio=ratio_summary(*many),
        clients=clients,
        schema_tokens=summarize([r.timing.tokens for results, _ in one_schema + many_schema for r in results]),
    )
