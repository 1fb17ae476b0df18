"""How much to measure: the full run (for the docs) or --quick (every section, in under 5 minutes)."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings, available_cpus

FULL_LEVELS = (1, 4, 8, 16, 32)
QUICK_LEVELS = (1, 16, 32)  # 16 and 32 carry targets


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    reps: int  # measured repetitions after the warm-up; figures are their medians
    new_tokens: int  # generated per request, EOS ignored
    warmup_tokens: int
    levels: tuple[int, ...]  # concurrent clients
    threads: int  # ORT intra-op threads = torch threads
    max_running: int  # the engine's batch limit: the server's default, which both engine contestants run
    http: bool
    health_interval_s: float = 0.02
    load_timeout_s: float = 600.0
    step_timeout_s: float = 1800.0

    @property
    def probe_level(self) -> int:
        """/v1/health is probed during the burst with the most clients."""
        return max(self.levels)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def make_plan(
    quick: bool,
    reps: int | None = None,
    new_tokens: int | None = None,
    levels: tuple[int, ...] | None = None,
    threads: int | None = None,
    http: bool = True,
) -> Plan:
    """Defaults by mode, overridden by what the user passed; raises ValueError on a value out of range."""
    plan = Plan(
        quick=quick,
        reps=reps if reps is not None else (2 if quick else 5),
        new_tokens=new_tokens if new_tokens is not None else (32 if quick else 128),
        warmup_tokens=4 if quick else 16,
        levels=tuple(sorted(set(levels))) if levels else (QUICK_LEVELS if quick else FULL_LEVELS),
        threads=threads if threads is not None else available_cpus(),
        max_running=Settings().max_running,
        http=http,
    )
    checks = [
        ("--reps", plan.reps >= 1, "must be at least 1"),
        ("--new-tokens", plan.new_tokens >= 2, "must be at least 2 (decode speed needs two tokens)"),
        ("--clients", all(n >= 1 for n in plan.levels), "must all be at least 1"),
        ("--threads", plan.threads >= 1, "must be at least 1"),
    ]
    for flag, ok, message in checks:
        if not ok:
            raise ValueError(f"{flag} {message}")
    return plan
