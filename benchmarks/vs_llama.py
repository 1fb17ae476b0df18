"""Ours against llama-server: the HTTP service's figures over llama-server's, both measured through the same
HTTP harness in the same rounds, paired repetition by repetition (benchmarks/stats.py)."""

from __future__ import annotations

import msgspec

from benchmarks.stats import Figures, Summary, burst_vs, single_vs


class VsLlamaServer(msgspec.Struct):
    """Ours (the HTTP service) over llama-server: > 1 means ours is faster; `peak_rss` is ours / llama-server's
    peak RSS (< 1: ours is smaller). None: one side did not measure it."""

    contestant: str  # llama-server's contestant id
    decode_tps: Summary | None
    ttft_short_s: Summary | None
    ttft_long_s: Summary | None
    aggregate_tps: dict[int, Summary | None]  # clients -> ratio ("16" in JSON)
    peak_rss: float | None


def vs_llama_server(
    contestant: str, ours: Figures, theirs: Figures, ours_rss: int | None, theirs_rss: int | None
) -> VsLlamaServer:
    single = single_vs(ours, theirs)
    rss = ours_rss / theirs_rss if ours_rss and theirs_rss else None
    return VsLlamaServer(
        contestant, single["decode_tps"], single["ttft_short_s"], single["ttft_long_s"], burst_vs(ours, theirs), rss
    )
