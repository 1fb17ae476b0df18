"""Rounds disturbed by other processes: measured, repeated, and accounted for in the report.

Another process on a 2-core machine slows contestants unevenly (PyTorch's thread pool stalls far more
than ORT's when a core is taken), which paired ratios cannot cancel. So the CPU that other processes
used is measured over each round; a round where they took more than DISTURBED of the machine is thrown
away whole (every contestant's figures of that round) and run again, up to `reps` extra times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.machine import CpuMark, foreign_share

DISTURBED = 0.10  # other processes' share of the CPU above which a round is repeated


@dataclass(slots=True)
class RoundLog:
    kept: list[tuple[float, float]] = field(default_factory=list)  # (foreign CPU-seconds, share) per kept round
    discarded: list[float] = field(default_factory=list)  # shares of the rounds thrown away

    def judge(self, start: CpuMark, end: CpuMark, retries_left: bool) -> bool:
        """Record a round; True to keep it, False when it was disturbed and may be repeated."""
        seconds, share = foreign_share(start, end)
        if share > DISTURBED and retries_left:
            self.discarded.append(round(share, 3))
            return False
        self.kept.append((seconds, share))
        return True

    def summary(self) -> dict:
        seconds = sum(s for s, _ in self.kept)
        shares = [round(share, 3) for _, share in self.kept]
        overall = max(shares) if shares else 0.0
        return {
            "cpu_seconds": round(seconds, 1),
            "share": overall,  # the worst kept round: that is what can bias a ratio
            "round_shares": shares,
            "discarded_round_shares": self.discarded,
        }
