"""Raw timings of every repetition -> the figures of the report: medians (min, max) and paired ratios.

A ratio against the baseline is taken repetition by repetition (ours_i / torch_i, both measured in the
same round), then summarized; the median of ratios, not the ratio of medians.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.drivers import Burst
from benchmarks.stats import Summary, ratio_summary, summarize
from benchmarks.timing import BurstRep, SingleStreamRep, StreamTiming, burst_rep, single_stream_rep

SINGLE_FIELDS = ("decode_tps", "ttft_short_s", "ttft_long_s", "itl_p50_s", "itl_p95_s")
BURST_FIELDS = ("aggregate_tps", "ttft_p50_s", "ttft_p95_s")


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
