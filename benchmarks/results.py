"""`results.json` as typed msgspec Structs: the run's settings, the machine, and per contestant its figures,
ratios to the baseline, memory, size and quality; then the issue's targets, judged on ratios and figures
from the same run. The report and the charts are drawn from `Results` alone, so they can be rebuilt from
results.json (`read_results`).

Optional sections are UNSET, not null, when they do not apply: they are then absent from the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import msgspec
from msgspec import UNSET, UnsetType

from app.engine.manifest import Manifest
from benchmarks.contestants import ENGINE, HTTP, LLAMA, PYTORCH, Contestant
from benchmarks.machine import ForeignLoad, Machine
from benchmarks.plan import EncodedPrompt, Plan
from benchmarks.scenario_results import ScenarioResults
from benchmarks.stats import Figures, Measured, Summary, burst_vs_single, figures, percentile, single_vs
from benchmarks.vs_llama import VsLlamaServer, vs_llama_server

SCHEMA = 1
MB = 1_000_000


class Quality(msgspec.Struct):
    """From the export's validation block (measured against PyTorch at export time), not recomputed;
    the reference itself has only `reference` and `note`."""

    reference: bool
    note: str | UnsetType = UNSET
    perplexity: float | UnsetType = UNSET
    perplexity_pytorch: float | UnsetType = UNSET
    perplexity_increase_pct: float | UnsetType = UNSET
    top1_agreement: float | UnsetType = UNSET
    heldout_tokens: int | UnsetType = UNSET
    greedy_exact_prompts: int | UnsetType = UNSET
    greedy_prompts: int | UnsetType = UNSET
    greedy_new_tokens: int | UnsetType = UNSET
    source: str | UnsetType = UNSET


class SingleFigures(msgspec.Struct):
    decode_tps: Summary
    ttft_short_s: Summary
    ttft_long_s: Summary
    itl_p50_s: Summary
    itl_p95_s: Summary


class Speedups(msgspec.Struct):
    """Ours over the other side, repetition by repetition (> 1: ours is faster); None: not paired."""

    decode_tps: Summary | None
    ttft_short_s: Summary | UnsetType | None = UNSET
    ttft_long_s: Summary | UnsetType | None = UNSET
    itl_p50_s: Summary | UnsetType | None = UNSET


class BurstFigures(msgspec.Struct):
    aggregate_tps: Summary
    ttft_p50_s: Summary
    ttft_p95_s: Summary
    vs_pytorch_single: Summary | None = None


class Health(msgspec.Struct):
    clients: int
    samples: int
    errors: list[str]
    error_count: int
    p50_ms: float | UnsetType = UNSET
    p99_ms: float | UnsetType = UNSET
    max_ms: float | UnsetType = UNSET


class ContestantResult(msgspec.Struct):
    id: str
    kind: str
    label: str
    variant: str | None
    model_dir: str | None
    skipped: str | None
    error: str | None
    notes: list[str]
    load_s: float | None
    peak_rss_bytes: int | None
    size_bytes: int | None
    size_note: str
    quality: Quality
    single: SingleFigures | UnsetType = UNSET
    vs_pytorch: Speedups | UnsetType = UNSET
    concurrency: dict[int, BurstFigures] | UnsetType = UNSET  # clients -> figures ("16" in JSON)
    health: Health | UnsetType = UNSET
    vs_engine: Speedups | UnsetType = UNSET
    vs_llama_server: VsLlamaServer | UnsetType = UNSET  # the HTTP service, when llama-server ran

    @property
    def measured(self) -> bool:
        """It ran: skipped and failed contestants have no figures."""
        return self.single is not UNSET


class PlanInfo(msgspec.Struct):
    mode: str
    reps: int
    new_tokens: int
    warmup_tokens: int
    clients: list[int]
    threads: int
    max_running: int
    health_interval_s: float
    probe_clients: int


class PromptInfo(msgspec.Struct):
    id: str
    length: str
    style: str
    tokens: int


class Baseline(msgspec.Struct):
    id: str
    label: str


class RunInfo(msgspec.Struct):
    command: str
    started_at: str
    duration_s: float
    foreign_load: ForeignLoad | None = None


class Target(msgspec.Struct):
    name: str
    requirement: str
    value: float | None  # None: not measured in this run
    unit: str
    passed: bool | None  # None: not measured
    detail: str
    status: str = ""
    shown: str = ""

    def __post_init__(self) -> None:
        self.status = "NOT MEASURED" if self.passed is None else ("PASS" if self.passed else "FAIL")
        self.shown = _shown(self.value, self.unit)


class Results(msgspec.Struct):
    schema: int
    command: str
    started_at: str
    duration_s: float
    foreign_load: ForeignLoad | None
    machine: Machine
    prompts: list[PromptInfo]
    plan: PlanInfo
    default_engine: str | None
    default_http: str | None
    baseline: Baseline
    contestants: list[ContestantResult]
    targets: list[Target] = []
    scenarios: ScenarioResults | UnsetType = UNSET  # issues 11 and 12's scenarios (benchmarks/scenarios.py)
    scenario_error: str | UnsetType = UNSET

    def contestant(self, cid: str | None) -> ContestantResult | None:
        return next((c for c in self.contestants if c.id == cid), None)

    def measured(self) -> list[ContestantResult]:
        """The contestants that ran."""
        return [c for c in self.contestants if c.measured]


def read_results(path: Path) -> Results:
    return msgspec.json.decode(path.read_bytes(), type=Results)


def _shown(value: float | None, unit: str) -> str:
    """The value as printed: three decimals near a ratio threshold of 0.9, so 0.899 does not read 0.90."""
    if value is None:
        return "n/a"
    digits = 3 if unit == "x" and value < 2 else 2
    return f"{value:.{digits}f}{'' if unit == 'x' else ' '}{unit}"


LLAMA_QUALITY = Quality(False, note="llama-server runs the GGUF as it is; its quality is not measured by the bench")


def quality(manifest: Manifest | None) -> Quality:
    if manifest is None:
        return Quality(True, note="the reference: other contestants' quality is measured against it")
    v = manifest.validation
    return Quality(
        False,
        perplexity=v.perplexity_onnx,
        perplexity_pytorch=v.perplexity_torch,
        perplexity_increase_pct=v.perplexity_increase_pct,
        top1_agreement=v.top1_agreement,
        heldout_tokens=v.heldout_tokens,
        greedy_exact_prompts=v.greedy.exact_prompts,
        greedy_prompts=v.greedy.prompts,
        greedy_new_tokens=v.greedy.new_tokens,
        source="manifest.json validation block, written by `llm-gateway export` against PyTorch",
    )


def source_size(location: str, gguf_file: str | None) -> tuple[int, str]:
    if gguf_file:
        return os.path.getsize(Path(location) / gguf_file), f"{gguf_file} (GGUF, dequantized to fp32 when loaded)"
    folder = Path(location)
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")] if folder.is_dir() else []
    return sum(p.stat().st_size for p in weights), "weight files of the source folder"


def health_summary(latencies: list[float], errors: list[str], clients: int) -> Health:
    ms = [1000.0 * v for v in latencies]
    health = Health(clients, len(ms), errors[:20], len(errors))
    if ms:
        health.p50_ms, health.p99_ms, health.max_ms = percentile(ms, 50), percentile(ms, 99), max(ms)
    return health


def contestant_entry(
    c: Contestant, m: Measured | None, f: Figures | None, base: Figures | None, plan: Plan
) -> ContestantResult:
    entry = ContestantResult(
        c.id, c.kind, c.label, c.variant, str(c.model_dir) if c.model_dir else None,
        c.skipped, m.error if m else None, c.notes, m.load_s if m else None, m.peak_rss_bytes if m else None,
        c.size_bytes, c.size_note, LLAMA_QUALITY if c.kind == LLAMA else quality(c.manifest),
    )  # fmt: skip
    if f is None:
        return entry
    entry.single = msgspec.convert(f.single, SingleFigures, from_attributes=True)
    if base is not None and c.kind != PYTORCH:
        entry.vs_pytorch = Speedups(**single_vs(f, base))
    vs_base = burst_vs_single(f, base) if base is not None else {}
    entry.concurrency = {n: BurstFigures(**figs, vs_pytorch_single=vs_base.get(n)) for n, figs in f.bursts.items()}
    if c.kind == HTTP and m is not None:
        probes = m.bursts.get(plan.probe_level, [])
        entry.health = health_summary(
            [v for b in probes for v in b.health_latencies_s],
            [e for b in probes for e in b.health_errors],
            plan.probe_level,
        )
    return entry


def build_results(
    plan: Plan,
    contestants: list[Contestant],
    measured: dict[str, Measured],
    figs: dict[str, Figures],
    run: RunInfo,
    machine: Machine,
    prompts: list[PromptInfo],
    scenarios: ScenarioResults | None = None,
    scenario_error: str | None = None,
) -> Results:
    base = figs.get(PYTORCH)
    entries = [contestant_entry(c, measured.get(c.id), figs.get(c.id), base, plan) for c in contestants]
    engines = [c for c in contestants if c.kind == ENGINE]
    http = next((c for c in contestants if c.kind == HTTP), None)
    default_engine = engines[0].id if engines else None
    if http is not None and default_engine in figs and http.id in figs:
        single = single_vs(figs[http.id], figs[default_engine])
        next(e for e in entries if e.id == http.id).vs_engine = Speedups(single["decode_tps"])
    llama = next((c for c in contestants if c.kind == LLAMA), None)
    if http is not None and llama is not None and http.id in figs and llama.id in figs:
        rss = [measured[c.id].peak_rss_bytes for c in (http, llama)]
        vs = vs_llama_server(llama.id, figs[http.id], figs[llama.id], *rss)
        next(e for e in entries if e.id == http.id).vs_llama_server = vs
    pytorch = next(c for c in contestants if c.kind == PYTORCH)
    info = PlanInfo(
        plan.mode, plan.reps, plan.new_tokens, plan.warmup_tokens, list(plan.levels), plan.threads,
        plan.max_running, plan.health_interval_s, plan.probe_level,
    )  # fmt: skip
    results = Results(
        SCHEMA, run.command, run.started_at, run.duration_s, run.foreign_load, machine, prompts, info,
        default_engine, http.id if http else None, Baseline(pytorch.id, pytorch.label), entries,
    )  # fmt: skip
    if scenarios is not None:
        results.scenarios = scenarios
    if scenario_error is not None:
        results.scenario_error = scenario_error
    results.targets = [
        *evaluate(results),
        *http_vs_pytorch_targets(results),
        *llama_targets(results),
        *scenario_targets(results),
    ]
    return results


def assemble(
    plan: Plan,
    contestants: list[Contestant],
    measured: dict[str, Measured],
    prompts: list[EncodedPrompt],
    run: RunInfo,
    scenarios: ScenarioResults | None = None,
    scenario_error: str | None = None,
) -> Results:
    """Figures, ratios and targets of a finished run, with the machine it ran on."""
    from benchmarks.machine import describe_machine

    long_ids = {p.id for p in prompts if p.prompt.length == "long"}
    figs = {cid: figures(m, long_ids) for cid, m in measured.items() if m.singles}
    infos = [PromptInfo(p.id, p.prompt.length, p.prompt.style, len(p.ids)) for p in prompts]
    return build_results(plan, contestants, measured, figs, run, describe_machine(), infos, scenarios, scenario_error)


# --- the targets -----------------------------------------------------------------------------------------


def _judge(
    name: str, requirement: str, value: float | None, unit: str, ok: Callable[[float], bool], detail: str, missing: str
) -> Target:
    if value is None:
        return Target(name, requirement, None, unit, None, missing)
    return Target(name, requirement, value, unit, bool(ok(value)), detail)


def _median(summary: Summary | UnsetType | None) -> float | None:
    return summary.median if isinstance(summary, Summary) else None


def evaluate(results: Results) -> list[Target]:
    engine = results.contestant(results.default_engine)
    http = results.contestant(results.default_http)
    variant = engine.variant if engine else "?"
    engine_concurrency = engine.concurrency if engine and engine.concurrency is not UNSET else {}
    conc16 = engine_concurrency.get(16)
    rss = engine.peak_rss_bytes if engine else None
    health = http.health if http and http.health is not UNSET else None
    engine_vs = engine.vs_pytorch if engine and engine.vs_pytorch is not UNSET else None
    http_vs = http.vs_engine if http and http.vs_engine is not UNSET else None
    return [
        _judge(
            "single-stream decode vs PyTorch",
            f"engine {variant} decode tokens/s >= 6x PyTorch fp32 (paired per repetition)",
            _median(engine_vs.decode_tps if engine_vs else None),
            "x",
            lambda v: v >= 6.0,
            "median of per-repetition ratios",
            _why(engine, "engine single-stream figures"),
        ),
        _judge(
            "aggregate decode at 16 concurrent vs PyTorch single-stream",
            f"engine {variant}, 16 concurrent clients: aggregate tokens/s >= 15x PyTorch single-stream decode",
            _median(conc16.vs_pytorch_single if conc16 else None),
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
            _median(http_vs.decode_tps if http_vs else None),
            "x",
            lambda v: v >= 0.90,
            "median of per-repetition ratios",
            _why(http, "HTTP single-stream figures"),
        ),
        _judge(
            "/v1/health latency under load",
            f"/v1/health p99 < 50 ms while {health.clients if health else 'the most'} clients stream",
            health.p99_ms if health and health.p99_ms is not UNSET else None,
            "ms",
            lambda v: v < 50.0,
            f"{health.samples if health else 0} probes, {len(health.errors) if health else 0} errors, "
            "from a separate process",
            _why(http, "health probes"),
        ),
    ]


def _why(contestant: ContestantResult | None, what: str) -> str:
    if contestant is None:
        return f"no {what}: the contestant was not part of this run"
    if contestant.skipped:
        return f"no {what}: {contestant.skipped}"
    if contestant.error:
        return f"no {what}: {contestant.error.splitlines()[0]}"
    return f"no {what} in this run"


def http_vs_pytorch_targets(results: Results) -> list[Target]:
    """Issue 16's goals for what a user gets, the HTTP service, against the PyTorch baseline."""
    http = results.contestant(results.default_http)
    vs = http.vs_pytorch if http and http.vs_pytorch is not UNSET else None
    paired = "HTTP service over PyTorch fp32, median of per-repetition ratios"
    missing = _why(http, "HTTP single-stream figures")
    return [
        _judge("HTTP single-stream decode vs PyTorch", "HTTP decode tokens/s >= 7x PyTorch fp32's",
               _median(vs.decode_tps if vs else None), "x", lambda v: v >= 7.0, paired, missing),
        _judge("HTTP long-prompt TTFT vs PyTorch", "HTTP long-prompt TTFT <= 0.6x PyTorch's (speed-up >= 1.67x)",
               _median(vs.ttft_long_s if vs and vs.ttft_long_s is not UNSET else None), "x",
               lambda v: v >= 1 / 0.6, paired + " (speed-up)", missing),
    ]  # fmt: skip


def llama_targets(results: Results) -> list[Target]:
    """Issue 16's targets against llama-server, when it was part of the run (none otherwise)."""
    llama = next((c for c in results.contestants if c.kind == LLAMA), None)
    if llama is None:
        return []
    http = results.contestant(results.default_http)
    vs = http.vs_llama_server if http and http.vs_llama_server is not UNSET else None
    missing = _why(llama if llama.skipped or llama.error else http, "paired figures of both servers")
    paired = "HTTP service over llama-server, same harness, median of per-repetition ratios"
    return [
        _judge("single-stream decode vs llama-server", "HTTP decode tokens/s >= 1.2x llama-server's on the same GGUF",
               _median(vs.decode_tps if vs else None), "x", lambda v: v >= 1.2, paired, missing),
        _judge("aggregate at 16 concurrent vs llama-server", "HTTP 16-client aggregate tokens/s >= 2x llama-server's",
               _median(vs.aggregate_tps.get(16) if vs else None), "x", lambda v: v >= 2.0, paired,
               _why(http, "16-client bursts of both servers (run with --clients including 16)")),
        _judge("long-prompt TTFT vs llama-server", "HTTP long-prompt TTFT <= 0.6x llama-server's (speed-up >= 1.67x)",
               _median(vs.ttft_long_s if vs else None), "x", lambda v: v >= 1 / 0.6, paired + " (speed-up)", missing),
    ]  # fmt: skip


def scenario_targets(results: Results) -> list[Target]:
    """Issues 11 and 12's speed targets, when the scenarios ran (none otherwise: they are not part of --quick)."""
    sc = results.scenarios
    if sc is UNSET:
        return []
    st, ratios, counts = sc.structured, sc.cache_ratios, sc.counts
    rss = sc.cache_on.peak_rss_bytes
    paired = "median of per-repetition ratios, with the cache over without it"
    return [
        _judge("structured: single-stream decode with a JSON schema", ">= 0.90x the same request unconstrained",
               st.single_ratio.median, "x", lambda v: v >= 0.90, "median of per-repetition ratios", ""),
        _judge(f"structured: {st.clients} concurrent constrained streams",
               ">= 0.80x the unconstrained aggregate tokens/s", st.many_ratio.median, "x", lambda v: v >= 0.80,
               "aggregate tokens/s over all streams, median of per-repetition ratios", ""),
        _judge(f"prefix cache: {counts['turns']}-turn chat, TTFT of turns 2-{counts['turns']}",
               "<= 0.15x without the cache", ratios.chat_ttft.median, "x", lambda v: v <= 0.15, paired, ""),
        _judge(f"prefix cache: {counts['shared_clients']} clients sharing a system prompt, TTFT p50",
               "<= 0.3x without the cache", ratios.shared_ttft_p50.median, "x", lambda v: v <= 0.3, paired, ""),
        _judge(f"prefix cache: {counts['short_clients']} short-prompt clients, TTFT p50",
               "<= 1300 ms (half of the 2.6 s measured before the cache)", 1000 * sc.cache_on.short_ttft_p50_s.median,
               "ms", lambda v: v <= 1300, "with the cache, on this machine", ""),
        _judge(f"prefix cache: {counts['short_clients']} short-prompt clients, aggregate tokens/s",
               ">= 1.0x without the cache", ratios.short_aggregate_tps.median, "x", lambda v: v >= 1.0, paired, ""),
        _judge("prefix cache: serving process peak RSS, default settings", "< 500 MB under the scenarios' load",
               None if rss is None else rss / MB, "MB", lambda v: v < 500,
               "VmHWM of the cache-on server over its warm-up and every repetition", "the server did not stop cleanly"),
    ]  # fmt: skip
