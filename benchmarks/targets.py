"""The issue's targets, judged on ratios and figures from the same run. Pure: results dict in, lines out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    requirement: str
    value: float | None  # None: not measured in this run
    unit: str
    passed: bool | None  # None: not measured
    detail: str

    @property
    def shown(self) -> str:
        """The value as printed: three decimals near a ratio threshold of 0.9, so 0.899 does not read 0.90."""
        if self.value is None:
            return "n/a"
        digits = 3 if self.unit == "x" and self.value < 2 else 2
        return f"{self.value:.{digits}f}{'' if self.unit == 'x' else ' '}{self.unit}"

    @property
    def status(self) -> str:
        return "NOT MEASURED" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status, "shown": self.shown}


def _judge(name: str, requirement: str, value: float | None, unit: str, ok, detail: str, missing: str) -> Target:
    if value is None:
        return Target(name, requirement, None, unit, None, missing)
    return Target(name, requirement, value, unit, bool(ok(value)), detail)


def _median(summary: dict | None) -> float | None:
    return None if summary is None else float(summary["median"])


def evaluate(results: dict[str, Any]) -> list[Target]:
    by_id = {c["id"]: c for c in results["contestants"]}
    engine = by_id.get(results["default_engine"]) or {}
    http = by_id.get(results["default_http"]) or {}
    variant = engine.get("variant", "?")
    conc16 = (engine.get("concurrency") or {}).get("16") or {}
    rss = engine.get("peak_rss_bytes")
    health = http.get("health") or {}
    return [
        _judge(
            "single-stream decode vs PyTorch",
            f"engine {variant} decode tokens/s >= 6x PyTorch fp32 (paired per repetition)",
            _median((engine.get("vs_pytorch") or {}).get("decode_tps")),
            "x",
            lambda v: v >= 6.0,
            "median of per-repetition ratios",
            _why(engine, "engine single-stream figures"),
        ),
        _judge(
            "aggregate decode at 16 concurrent vs PyTorch single-stream",
            f"engine {variant}, 16 concurrent clients: aggregate tokens/s >= 15x PyTorch single-stream decode",
            _median(conc16.get("vs_pytorch_single")),
            "x",
            lambda v: v >= 15.0,
            "aggregate includes each request's prefill and queueing; PyTorch's is decode only",
            _why(engine, "a 16-client burst (run with --clients including 16)"),
        ),
        _judge(
            "engine peak RSS",
            f"peak RSS of the engine process with {variant} < 500 MB",
            None if rss is None else rss / MB,
            "MB",
            lambda v: v < 500.0,
            "Peak resident set (ru_maxrss) of the engine worker over its whole life: load, single streams, bursts",
            _why(engine, "the engine worker's peak RSS"),
        ),
        _judge(
            "HTTP single-client streamed tokens/s vs engine",
            "HTTP single-client decode tokens/s >= 90% of the in-process engine's (same variant, paired)",
            _median((http.get("vs_engine") or {}).get("decode_tps")),
            "x",
            lambda v: v >= 0.90,
            "median of per-repetition ratios",
            _why(http, "HTTP single-stream figures"),
        ),
        _judge(
            "/v1/health latency under load",
            f"/v1/health p99 < 50 ms while {health.get('clients', 'the most')} clients stream",
            health.get("p99_ms"),
            "ms",
            lambda v: v < 50.0,
            f"{health.get('samples', 0)} probes, {len(health.get('errors') or [])} errors, from a separate process",
            _why(http, "health probes"),
        ),
    ]


def _why(contestant: dict, what: str) -> str:
    if not contestant:
        return f"no {what}: the contestant was not part of this run"
    if contestant.get("skipped"):
        return f"no {what}: {contestant['skipped']}"
    if contestant.get("error"):
        return f"no {what}: {contestant['error'].splitlines()[0]}"
    return f"no {what} in this run"
