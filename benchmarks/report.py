"""A run's files: results.json, the markdown report and the PNG charts under img/, drawn from `Results`
alone (so the report and charts can be rebuilt from results.json). Charts use matplotlib's Agg backend:
decode tokens/s per contestant, and aggregate throughput and time to first token against clients."""

from __future__ import annotations

from pathlib import Path

import msgspec
from msgspec import UNSET

from benchmarks.machine import DISTURBED, ForeignLoad
from benchmarks.results import MB, ContestantResult, Quality, Results
from benchmarks.scenario_results import GrammarSpeed
from benchmarks.stats import Summary

RESULTS = "results.json"
REPORT = "report.md"
IMAGES = "img"
CHARTS = {
    "decode": "decode-tokens-per-s.png",
    "throughput": "throughput-vs-clients.png",
    "ttft": "ttft-vs-clients.png",
}

NA = "n/a"


def write_outputs(results: Results, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    charts = draw_charts(results, out / IMAGES)
    (out / REPORT).write_text(render(results, IMAGES), encoding="utf-8")
    return {"results": out / RESULTS, "report": out / REPORT, **charts}


def spread(summary: Summary | None, scale: float = 1.0, digits: int = 1) -> str:
    """'median (min-max)' of a summary; n/a when the figure was not measured."""
    if not summary:
        return NA
    m, lo, hi = (v * scale for v in (summary.median, summary.min, summary.max))
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def ratio(summary: Summary | None) -> str:
    return spread(summary, digits=2).replace(" (", "x (") if summary else NA


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def busy_warning(load: ForeignLoad) -> str:
    return (
        f"other processes took up to {100 * load.share:.0f}% of this machine's CPU during a measured round; "
        "they slow contestants unevenly (PyTorch's thread pool far more than ONNX Runtime's), so these figures "
        "and ratios are not reliable: run again on a quiet machine"
    )


def load_line(results: Results) -> str:
    load = results.foreign_load
    if load is None:
        return ""
    repeated = load.discarded_round_shares
    note = (
        f" {len(repeated)} round(s) were repeated because other processes took more than {100 * DISTURBED:.0f}% "
        f"of the CPU during them ({', '.join(f'{100 * s:.0f}%' for s in repeated)})."
        if repeated
        else ""
    )
    if load.share > DISTURBED:
        return f"**Warning: {busy_warning(load)}.**{note}"
    return f"Other processes took at most {100 * load.share:.1f}% of the CPU during a measured round.{note}"


def header(results: Results) -> list[str]:
    machine, plan = results.machine, results.plan
    cpu, git, libraries = machine.cpu, machine.git, machine.libraries
    sha = (git.sha or "unknown")[:12] + (" (uncommitted changes)" if git.dirty else "")
    return [
        f"# llm-gateway bench: {plan.mode} run",
        "",
        f"Run `{results.command}` on {results.started_at}, took {results.duration_s / 60:.1f} min; git {sha}.",
        f"Machine: {cpu.model}{f' (ISA class {cpu.isa})' if cpu.isa else ''}, {machine.cores} cores "
        f"({', '.join(cpu.key_flags) or 'no AVX flags'}), "
        f"{(machine.memory_bytes or 0) / 2**30:.0f} GiB RAM; onnxruntime {libraries.get('onnxruntime')}, "
        f"torch {libraries.get('torch')}, transformers {libraries.get('transformers')}.",
        f"Every figure is the median of {plan.reps} repetitions after a warm-up, with (min–max) beside it. "
        f"{plan.new_tokens} new tokens per request with EOS ignored, greedy, {plan.threads} threads for every "
        "contestant. Ratios to PyTorch are taken repetition by repetition within this run, then summarized.",
        "",
        load_line(results),
        "",
    ]


def targets_section(results: Results) -> list[str]:
    lines = ["## Targets", ""]
    for t in results.targets:
        detail = t.detail[:1].upper() + t.detail[1:]
        lines.append(f"- **{t.status}** {t.name}: {t.shown}. Requirement: {t.requirement}. {detail}.")
    return [*lines, ""]


def single_section(results: Results) -> list[str]:
    rows = []
    for c in results.measured():
        s, vs = c.single, c.vs_pytorch
        assert s is not UNSET  # measured() keeps the contestants with figures
        rows.append([
            c.label, spread(s.decode_tps), ratio(vs.decode_tps) if vs else "1 (baseline)",
            spread(s.ttft_short_s, 1000, 0), spread(s.ttft_long_s, 1000, 0),
            ratio(vs.ttft_long_s or None) if vs else "1 (baseline)",
            spread(s.itl_p50_s, 1000, 1), spread(s.itl_p95_s, 1000, 1),
        ])  # fmt: skip
    head = ["contestant", "decode tok/s", "vs PyTorch", "TTFT short ms", "TTFT long ms", "long TTFT speed-up",
            "ITL p50 ms", "ITL p95 ms"]  # fmt: skip
    prompts = ", ".join(f"{p.id} ({p.tokens} tokens)" for p in results.prompts)
    return [
        "## Single stream",
        "",
        f"One request at a time over the prompt set: {prompts}. Decode tok/s counts the tokens after the first "
        "over the time from the first token to the last (prefill excluded), summed over the prompts; TTFT is the "
        "mean over the short (or long) prompts; inter-token latency (ITL) percentiles pool every gap of a "
        "repetition. The HTTP row is the same measurement through `llm-gateway serve` and SSE.",
        "",
        *_table(head, rows),
        "",
    ]


def concurrency_section(results: Results) -> list[str]:
    rows = []
    for c in results.measured():
        for n, f in sorted((c.concurrency or {}).items()):
            rows.append([
                c.label, str(n), spread(f.aggregate_tps), ratio(f.vs_pytorch_single),
                spread(f.ttft_p50_s, 1000, 0), spread(f.ttft_p95_s, 1000, 0),
            ])  # fmt: skip
    head = ["contestant", "clients", "aggregate tok/s", "vs PyTorch single-stream", "TTFT p50 ms", "TTFT p95 ms"]
    return [
        "## Concurrency",
        "",
        f"N clients send the short chat prompt at the same moment, each streaming {results.plan.new_tokens} "
        "tokens. Aggregate tok/s = all tokens of all clients / time from the sends to the last token (prefill and "
        f"queueing included; the engine batches up to {results.plan.max_running} streams). PyTorch and ORTModel "
        "have no request scheduler, so they appear here only as the single-stream reference.",
        "",
        *(_table(head, rows) if rows else ["No concurrency figures were measured in this run."]),
        "",
    ]


def llama_section(results: Results) -> list[str]:
    """Ours (the HTTP service) against llama-server, both through the same HTTP harness in the same rounds."""
    lines = ["## Against llama-server", ""]
    llama = next((c for c in results.contestants if c.kind == "llama-server"), None)
    http = results.contestant(results.default_http)
    vs = http.vs_llama_server if http and http.vs_llama_server is not UNSET else None
    if llama is None or http is None or vs is None:
        reason = "run with --llama-server PATH (how to build it: docs/benchmarks.md)"
        if llama is not None:
            failed = next((c for c in (llama, http) if c and (c.skipped or c.error)), None)
            reason = f"{failed.label}: {(failed.skipped or failed.error or '').splitlines()[0]}" if failed else NA
        return [*lines, f"Not measured: {reason}.", ""]
    cpu, plan = results.machine.cpu, results.plan
    long_tokens = max(p.tokens for p in results.prompts if p.length == "long")
    sides = [http, llama]
    rows = [
        ["single-stream decode tok/s", *(spread(c.single.decode_tps) for c in sides), ratio(vs.decode_tps),
         *(ratio(_vs_pytorch(c, "decode_tps")) for c in sides)],
        ["TTFT short prompts ms", *(spread(c.single.ttft_short_s, 1000, 0) for c in sides), ratio(vs.ttft_short_s),
         *(ratio(_vs_pytorch(c, "ttft_short_s")) for c in sides)],
        [f"TTFT long prompts ({long_tokens} tokens) ms", *(spread(c.single.ttft_long_s, 1000, 0) for c in sides),
         ratio(vs.ttft_long_s), *(ratio(_vs_pytorch(c, "ttft_long_s")) for c in sides)],
    ]  # fmt: skip
    for n, r in sorted(vs.aggregate_tps.items()):
        figs = [c.concurrency[n] for c in sides]
        rows.append([f"{n} clients, aggregate tok/s", *(spread(f.aggregate_tps) for f in figs), ratio(r),
                     *(ratio(f.vs_pytorch_single) for f in figs)])  # fmt: skip
    rss = [NA if c.peak_rss_bytes is None else f"{c.peak_rss_bytes / MB:.0f}" for c in sides]
    rows.append(["peak RSS MB", *rss, NA if vs.peak_rss is None else f"{vs.peak_rss:.2f}x", NA, NA])
    head = ["figure", http.label, llama.label, "ours / llama-server", "ours vs PyTorch", "llama-server vs PyTorch"]
    return [
        *lines,
        f"{llama.label} on {cpu.model} ({', '.join(cpu.key_flags) or 'no AVX flags'}), {plan.threads} threads, "
        "serving the GGUF our export starts from, measured through the same HTTP load as the HTTP service (the "
        f"same prompts, client counts and {plan.new_tokens} new tokens with EOS ignored, greedy, no prompt cache on "
        "either side) in the same rounds. Ratios are ours over llama-server's, paired repetition by repetition: "
        "> 1 means ours is faster; for peak RSS it is ours / llama-server's (< 1: ours is smaller). Its flags are "
        "in the notes below.",
        "",
        *_table(head, rows),
        "",
    ]


def _vs_pytorch(c: ContestantResult, name: str) -> Summary | None:
    """One of a contestant's speed-ups over PyTorch, None when PyTorch was not measured."""
    return getattr(c.vs_pytorch, name, None) or None


def health_section(results: Results) -> list[str]:
    http = results.contestant(results.default_http)
    health = http.health if http else UNSET
    lines = ["## /v1/health under load", ""]
    if not health or not health.samples:
        reason = (http.skipped or http.error if http else None) or "no probe answered"
        return [*lines, f"Not measured: {reason}.", ""]
    return [
        *lines,
        f"While {health.clients} clients streamed, a separate process sent GET /v1/health every "
        f"{1000 * results.plan.health_interval_s:.0f} ms over one keep-alive connection: {health.samples} "
        f"answers, p50 {health.p50_ms:.1f} ms, p99 {health.p99_ms:.1f} ms, max {health.max_ms:.1f} ms, "
        f"{health.error_count} errors.",
        "",
    ]


def _requirement(results: Results, prefix: str) -> str:
    """'PASS (>= 0.90x ...)' for the scenario target whose name starts with `prefix`."""
    target = next((t for t in results.targets if t.name.startswith(prefix)), None)
    return f"{target.status}: {target.requirement}" if target else NA


def _grammar_lines(g: GrammarSpeed | None) -> list[str]:
    if g is None:
        return []
    return [
        f"Grammars (llguidance, in the bench process, before the servers start): compile over the {g.schemas} test "
        f"schemas p50 {g.compile_p50_ms:.2f} ms, p99 {g.compile_p99_ms:.2f} ms; one matcher's mask p50 "
        f"{g.mask_p50_us:.0f} us, p99 {g.mask_p99_us:.0f} us; 16 masks in one call p50 {g.batch_mask_p50_us:.0f} us; "
        f"applying 16 masks to the logits p50 {g.apply_p50_us:.0f} us.",
        "",
    ]


def scenarios_section(results: Results) -> list[str]:
    lines = ["## Structured outputs and prefix cache", ""]
    sc = results.scenarios
    if sc is UNSET:
        reason = results.scenario_error or "not run (they run in the full bench, and with --quick --scenarios)"
        return [*lines, f"Not measured: {reason}.", ""]
    cpu, st, on, off, r = results.machine.cpu, sc.structured, sc.cache_on, sc.cache_off, sc.cache_ratios
    n = sc.counts
    structured = [
        ["1 stream, decode tok/s", spread(st.single_schema_tps), spread(st.single_plain_tps), ratio(st.single_ratio),
         _requirement(results, "structured: single")],
        [f"{st.clients} streams, aggregate tok/s", spread(st.many_schema_tps), spread(st.many_plain_tps),
         ratio(st.many_ratio), _requirement(results, f"structured: {st.clients}")],
    ]  # fmt: skip
    rss = [NA if v is None else f"{v / MB:.0f}" for v in (on.peak_rss_bytes, off.peak_rss_bytes)]
    cache = [
        [f"{n['turns']}-turn chat, TTFT turns 2-{n['turns']} ms", spread(on.chat_ttft_s, 1000, 0),
         spread(off.chat_ttft_s, 1000, 0), ratio(r.chat_ttft),
         _requirement(results, f"prefix cache: {n['turns']}-turn")],
        [f"{n['shared_clients']} clients, shared system prompt, TTFT p50 ms", spread(on.shared_ttft_p50_s, 1000, 0),
         spread(off.shared_ttft_p50_s, 1000, 0), ratio(r.shared_ttft_p50),
         _requirement(results, f"prefix cache: {n['shared_clients']} clients")],
        [f"{n['short_clients']} short-prompt clients, TTFT p50 ms", spread(on.short_ttft_p50_s, 1000, 0),
         spread(off.short_ttft_p50_s, 1000, 0), ratio(r.short_ttft_p50),
         _requirement(results, f"prefix cache: {n['short_clients']} short-prompt clients, TTFT")],
        [f"{n['short_clients']} short-prompt clients, aggregate tok/s", spread(on.short_aggregate_tps),
         spread(off.short_aggregate_tps), ratio(r.short_aggregate_tps),
         _requirement(results, f"prefix cache: {n['short_clients']} short-prompt clients, aggregate")],
        ["server peak RSS MB", rss[0], rss[1], NA, _requirement(results, "prefix cache: serving")],
    ]  # fmt: skip
    share = NA if on.chat_cached_share is None else f"{100 * on.chat_cached_share:.0f}%"
    return [
        *lines,
        f"Two more `llm-gateway serve` processes on {cpu.model} ({', '.join(cpu.key_flags) or 'no AVX flags'}), "
        f"{results.plan.threads} threads: LLM_GATEWAY_PREFIX_CACHE=true and =false, every repetition on both back "
        "to back (alternating which goes first), ratios paired per repetition. Each repetition has its own "
        "`cache_salt`, so none reuses another's prefixes.",
        "",
        f"Structured outputs (POST /v1/generate, greedy, cache off): a JSON schema of twelve 8-16 character strings "
        f"against the same prompt unconstrained with EOS ignored, both up to {n['schema_tokens']} tokens "
        f"(constrained streams produced {st.schema_tokens.median:.0f} tokens, the schema's end).",
        "",
        *_table(["load", "with schema", "without", "ratio", "target"], structured),
        "",
        *_grammar_lines(sc.grammar),
        f"Prefix cache (chat, {n['turn_tokens']} new tokens a request; the shared system prompt is an instruction "
        f"and the long plain prompt). Prompt tokens served from the cache over the chat's later turns: {share}.",
        "",
        *_table(["load", "cache on", "cache off", "on / off", "target"], cache),
        "",
    ]


def memory_section(results: Results) -> list[str]:
    rows = []
    for c in results.contestants:
        if c.skipped:
            continue
        rss = NA if c.peak_rss_bytes is None else f"{c.peak_rss_bytes / MB:.0f}"
        size = NA if c.size_bytes is None else f"{c.size_bytes / MB:.1f}"
        load = NA if c.load_s is None else f"{c.load_s:.1f}"
        rows.append([c.label, rss, size, c.size_note, load])
    return [
        "## Memory and size",
        "",
        "Peak RSS is each contestant's own process (ru_maxrss of its worker; VmHWM of the server process), over its "
        "whole life: load, warm-up, every repetition and burst.",
        "",
        *_table(["contestant", "peak RSS MB", "on disk MB", "what is on disk", "load s"], rows),
        "",
    ]


def quality_section(results: Results) -> list[str]:
    """One row per exported variant (every contestant on a variant runs the very same graph)."""
    variants: dict[str, Quality] = {}
    users: dict[str, list[str]] = {}
    ordered = sorted(results.contestants, key=lambda c: c.kind != "engine")  # --models order first
    for c in ordered:
        if c.variant and not c.skipped:
            variants.setdefault(c.variant, c.quality)
    for c in results.contestants:
        if c.variant and not c.skipped:
            users.setdefault(c.variant, []).append(c.kind)
    rows = [
        [variant, f"{q.perplexity:.3f}", f"{q.perplexity_increase_pct:+.2f}%", f"{q.top1_agreement:.3f}",
         f"{q.greedy_exact_prompts}/{q.greedy_prompts}", ", ".join(users[variant])]
        for variant, q in variants.items()
    ]  # fmt: skip
    ppl_ref = next(iter(variants.values())).perplexity_pytorch if variants else NA
    return [
        "## Quality against PyTorch",
        "",
        "Reused from each folder's manifest.json, not recomputed: `llm-gateway export` measured them against the "
        "PyTorch fp32 model on the shipped held-out text (export/data/heldout.txt) and fixed chat prompts. "
        f"PyTorch's own perplexity there: {ppl_ref}. Top-1 agreement is next-token argmax agreement with PyTorch; "
        "greedy exact counts prompts whose greedy tokens equal PyTorch's.",
        "",
        *_table(["variant", "perplexity", "vs PyTorch", "top-1 agreement", "greedy exact prompts", "run by"], rows),
        "",
    ]


def notes_section(results: Results) -> list[str]:
    lines = ["## Skipped, failed and notes", ""]
    for c in results.contestants:
        if c.skipped:
            lines.append(f"- {c.label}: skipped. {c.skipped}.")
        if c.error:
            lines.append(f"- {c.label}: FAILED: {c.error.splitlines()[0]}")
        lines.extend(f"- {c.label}: {note}" for note in c.notes)
    return [*lines, ""]


def charts_section(image_dir: str) -> list[str]:
    return [
        "## Charts",
        "",
        f"![decode tokens/s]({image_dir}/{CHARTS['decode']})",
        "",
        f"![throughput against clients]({image_dir}/{CHARTS['throughput']})",
        "",
        f"![TTFT against clients]({image_dir}/{CHARTS['ttft']})",
        "",
    ]


def export_command(variant: str, model_dir: str = "") -> str:
    """The `llm-gateway export` line that writes a variant (gqa is the default graph; the default quant, auto,
    names the folder `-auto` and may choose another level elsewhere, so the level is always given, and the
    folder too when its name is not the level's)."""
    graph, quant = variant.split("-", 1)
    flags = ("" if graph == "gqa" else f" --graph {graph}") + f" --quant {quant}"
    if model_dir and not model_dir.rstrip("/").endswith(f"-{variant}"):
        flags += f" --out {model_dir}"
    return f"llm-gateway export{flags}"


def reproduce_section(results: Results) -> list[str]:
    engines = [c for c in results.contestants if c.kind == "engine" and c.variant and c.model_dir]
    commands = [export_command(c.variant or "", c.model_dir or "") for c in engines]
    width = max(len(command) for command in commands) + 2
    exports = [f"{command:<{width}}# {c.model_dir}" for command, c in zip(commands, engines, strict=True)]
    folders = " ".join(c.model_dir or "" for c in engines)
    return [
        "## How to reproduce",
        "",
        "```bash",
        *exports,
        f"llm-gateway bench --models {folders}   # add --quick for a run under 5 minutes",
        *[
            f"llm-gateway bench --models {folders} --llama-server PATH   # and llama.cpp's server (docs/benchmarks.md)"
            for c in results.contestants
            if c.kind == "llama-server"
        ],
        "```",
        "",
        f"This run: `{results.command}`. The raw figures, every repetition included, are in results.json.",
        "",
    ]


def render(results: Results, image_dir: str = "img") -> str:
    sections = [
        header(results), targets_section(results), single_section(results), concurrency_section(results),
        llama_section(results), health_section(results), scenarios_section(results),
        memory_section(results), quality_section(results), charts_section(image_dir),
        notes_section(results), reproduce_section(results),
    ]  # fmt: skip
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"


# --- charts ------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _decode(c: ContestantResult) -> Summary:
    assert c.single is not UNSET  # drawn only for measured contestants
    return c.single.decode_tps


def decode_chart(results: Results, path: Path) -> None:
    plt = _pyplot()
    rows = results.measured()
    labels = [c.label for c in rows]
    med = [_decode(c).median for c in rows]
    low = [m - _decode(c).min for m, c in zip(med, rows, strict=True)]
    high = [_decode(c).max - m for m, c in zip(med, rows, strict=True)]
    palette = {"pytorch": "#9e9e9e", "http": "#2ca02c", "llama-server": "#ff7f0e"}
    colors = [palette.get(c.kind, "#1f77b4") for c in rows]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.6))
    ax.barh(labels, med, xerr=[low, high], color=colors, capsize=3)
    top = [m + h for m, h in zip(med, high, strict=True)]
    for y, (value, c) in enumerate(zip(med, rows, strict=True)):
        ratio = c.vs_pytorch.decode_tps if c.vs_pytorch else None
        text = f"{value:.1f}" + (f"  ({ratio.median:.1f}x PyTorch)" if ratio else "")
        ax.text(top[y], y, "  " + text, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("decode tokens/s, one stream (median; bars: min-max)")
    ax.set_xlim(0, max(max(top) * 1.5, 1.0))
    ax.set_title(f"Single-stream decode, {results.plan.new_tokens} new tokens, {results.plan.threads} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def concurrency_chart(results: Results, path: Path, metric: str) -> None:
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in results.measured():
        points = sorted((n, getattr(f, metric)) for n, f in (c.concurrency or {}).items())
        if not points:
            continue
        xs = [n for n, _ in points]
        scale = 1000.0 if metric.endswith("_s") else 1.0
        med = [s.median * scale for _, s in points]
        err = [[m - s.min * scale for m, (_, s) in zip(med, points, strict=True)],
               [s.max * scale - m for m, (_, s) in zip(med, points, strict=True)]]  # fmt: skip
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=c.label)
    base = next((c for c in results.measured() if c.kind == "pytorch"), None)
    if metric == "aggregate_tps" and base:
        ax.axhline(_decode(base).median, color="#9e9e9e", linestyle="--", label="PyTorch, one stream")
    ax.set_xscale("log", base=2)
    ax.set_xticks(results.plan.clients, [str(n) for n in results.plan.clients])
    ax.set_xlabel("concurrent streaming clients")
    if metric == "aggregate_tps":
        ax.set_ylabel("aggregate tokens/s (median; bars: min-max)")
        ax.set_title("Throughput against concurrency")
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylabel("time to first token, p50 over clients (ms)")
        ax.set_title("Time to first token against concurrency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_charts(results: Results, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / name for key, name in CHARTS.items()}
    decode_chart(results, paths["decode"])
    concurrency_chart(results, paths["throughput"], "aggregate_tps")
    concurrency_chart(results, paths["ttft"], "ttft_p50_s")
    return paths
