"""The markdown report, drawn from the results dict alone (so it can be rebuilt from results.json)."""

from __future__ import annotations

from typing import Any

from benchmarks.charts import CHARTS, measured
from benchmarks.rounds import DISTURBED
from benchmarks.targets import MB

NA = "n/a"


def spread(summary: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    """'median (min-max)' of a summary; n/a when the figure was not measured."""
    if not summary:
        return NA
    m, lo, hi = (summary[k] * scale for k in ("median", "min", "max"))
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def ratio(summary: dict | None) -> str:
    return spread(summary, digits=2).replace(" (", "x (") if summary else NA


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def busy_warning(load: dict[str, Any]) -> str:
    return (
        f"other processes took up to {100 * load['share']:.0f}% of this machine's CPU during a measured round; "
        "they slow contestants unevenly (PyTorch's thread pool far more than ONNX Runtime's), so these figures "
        "and ratios are not reliable: run again on a quiet machine"
    )


def load_line(results: dict[str, Any]) -> str:
    load = results.get("foreign_load")
    if load is None:
        return ""
    repeated = load.get("discarded_round_shares") or []
    note = (
        f" {len(repeated)} round(s) were repeated because other processes took more than {100 * DISTURBED:.0f}% "
        f"of the CPU during them ({', '.join(f'{100 * s:.0f}%' for s in repeated)})."
        if repeated
        else ""
    )
    if load["share"] > DISTURBED:
        return f"**Warning: {busy_warning(load)}.**{note}"
    return f"Other processes took at most {100 * load['share']:.1f}% of the CPU during a measured round.{note}"


def header(results: dict[str, Any]) -> list[str]:
    machine, plan = results["machine"], results["plan"]
    cpu = machine["cpu"]
    git = machine["git"]
    sha = (git["sha"] or "unknown")[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    return [
        f"# llm-gateway bench: {plan['mode']} run",
        "",
        f"Run `{results['command']}` on {results['started_at']}, took {results['duration_s'] / 60:.1f} min; git {sha}.",
        f"Machine: {cpu['model']}, {machine['cores']} cores ({', '.join(cpu['key_flags']) or 'no AVX flags'}), "
        f"{machine['memory_bytes'] / 2**30:.0f} GiB RAM; onnxruntime {machine['libraries'].get('onnxruntime')}, "
        f"torch {machine['libraries'].get('torch')}, transformers {machine['libraries'].get('transformers')}.",
        f"Every figure is the median of {plan['reps']} repetitions after a warm-up, with (min–max) beside it. "
        f"{plan['new_tokens']} new tokens per request with EOS ignored, greedy, {plan['threads']} threads for every "
        "contestant. Ratios to PyTorch are taken repetition by repetition within this run, then summarized.",
        "",
        load_line(results),
        "",
    ]


def targets_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Targets", ""]
    for t in results["targets"]:
        value = t["shown"]
        detail = t["detail"][:1].upper() + t["detail"][1:]
        lines.append(f"- **{t['status']}** {t['name']}: {value}. Requirement: {t['requirement']}. {detail}.")
    return [*lines, ""]


def single_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for c in measured(results):
        s, vs = c["single"], c.get("vs_pytorch") or {}
        rows.append([
            c["label"], spread(s["decode_tps"]), ratio(vs.get("decode_tps")) if vs else "1 (baseline)",
            spread(s["ttft_short_s"], 1000, 0), spread(s["ttft_long_s"], 1000, 0),
            ratio(vs.get("ttft_long_s")) if vs else "1 (baseline)",
            spread(s["itl_p50_s"], 1000, 1), spread(s["itl_p95_s"], 1000, 1),
        ])  # fmt: skip
    head = ["contestant", "decode tok/s", "vs PyTorch", "TTFT short ms", "TTFT long ms", "long TTFT speed-up",
            "ITL p50 ms", "ITL p95 ms"]  # fmt: skip
    prompts = ", ".join(f"{p['id']} ({p['tokens']} tokens)" for p in results["prompts"])
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


def concurrency_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for c in measured(results):
        for n, f in sorted((c.get("concurrency") or {}).items(), key=lambda kv: int(kv[0])):
            rows.append([
                c["label"], n, spread(f["aggregate_tps"]), ratio(f.get("vs_pytorch_single")),
                spread(f["ttft_p50_s"], 1000, 0), spread(f["ttft_p95_s"], 1000, 0),
            ])  # fmt: skip
    head = ["contestant", "clients", "aggregate tok/s", "vs PyTorch single-stream", "TTFT p50 ms", "TTFT p95 ms"]
    return [
        "## Concurrency",
        "",
        f"N clients send the short chat prompt at the same moment, each streaming {results['plan']['new_tokens']} "
        "tokens. Aggregate tok/s = all tokens of all clients / time from the sends to the last token (prefill and "
        f"queueing included; the engine batches up to {results['plan']['max_running']} streams). PyTorch and ORTModel "
        "have no request scheduler, so they appear here only as the single-stream reference.",
        "",
        *(_table(head, rows) if rows else ["No concurrency figures were measured in this run."]),
        "",
    ]


def health_section(results: dict[str, Any]) -> list[str]:
    http = next((c for c in results["contestants"] if c["id"] == results.get("default_http")), None)
    health = (http or {}).get("health")
    lines = ["## /v1/health under load", ""]
    if not health or not health.get("samples"):
        reason = (http or {}).get("skipped") or (http or {}).get("error") or "no probe answered"
        return [*lines, f"Not measured: {reason}.", ""]
    return [
        *lines,
        f"While {health['clients']} clients streamed, a separate process sent GET /v1/health every "
        f"{1000 * results['plan']['health_interval_s']:.0f} ms over one keep-alive connection: {health['samples']} "
        f"answers, p50 {health['p50_ms']:.1f} ms, p99 {health['p99_ms']:.1f} ms, max {health['max_ms']:.1f} ms, "
        f"{health['error_count']} errors.",
        "",
    ]


def memory_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for c in results["contestants"]:
        if c.get("skipped"):
            continue
        rss = NA if c.get("peak_rss_bytes") is None else f"{c['peak_rss_bytes'] / MB:.0f}"
        size = NA if c.get("size_bytes") is None else f"{c['size_bytes'] / MB:.1f}"
        load = NA if c.get("load_s") is None else f"{c['load_s']:.1f}"
        rows.append([c["label"], rss, size, c.get("size_note") or "", load])
    return [
        "## Memory and size",
        "",
        "Peak RSS is each contestant's own process (ru_maxrss of its worker; VmHWM of the server process), over its "
        "whole life: load, warm-up, every repetition and burst.",
        "",
        *_table(["contestant", "peak RSS MB", "on disk MB", "what is on disk", "load s"], rows),
        "",
    ]


def quality_section(results: dict[str, Any]) -> list[str]:
    """One row per exported variant (every contestant on a variant runs the very same graph)."""
    variants: dict[str, dict[str, Any]] = {}
    users: dict[str, list[str]] = {}
    ordered = sorted(results["contestants"], key=lambda c: c["kind"] != "engine")  # --models order first
    for c in ordered:
        if c["variant"] and not c.get("skipped"):
            variants.setdefault(c["variant"], c["quality"])
    for c in results["contestants"]:
        if c["variant"] and not c.get("skipped"):
            users.setdefault(c["variant"], []).append(c["kind"])
    rows = [
        [variant, f"{q['perplexity']:.3f}", f"{q['perplexity_increase_pct']:+.2f}%", f"{q['top1_agreement']:.3f}",
         f"{q['greedy_exact_prompts']}/{q['greedy_prompts']}", ", ".join(users[variant])]
        for variant, q in variants.items()
    ]  # fmt: skip
    ppl_ref = next(iter(variants.values()))["perplexity_pytorch"] if variants else NA
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


def notes_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Skipped, failed and notes", ""]
    for c in results["contestants"]:
        if c.get("skipped"):
            lines.append(f"- {c['label']}: skipped. {c['skipped']}.")
        if c.get("error"):
            lines.append(f"- {c['label']}: FAILED: {c['error'].splitlines()[0]}")
        lines.extend(f"- {c['label']}: {note}" for note in c.get("notes") or [])
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


def export_command(variant: str) -> str:
    """The `llm-gateway export` line that writes a variant ("gqa-int8" is the default)."""
    graph, quant = variant.split("-", 1)
    flags = ("" if graph == "gqa" else f" --graph {graph}") + ("" if quant == "int8" else f" --quant {quant}")
    return f"llm-gateway export{flags}"


def reproduce_section(results: dict[str, Any]) -> list[str]:
    engines = [c for c in results["contestants"] if c["kind"] == "engine"]
    width = max(len(export_command(c["variant"])) for c in engines) + 2
    exports = [f"{export_command(c['variant']):<{width}}# {c['model_dir']}" for c in engines]
    folders = " ".join(c["model_dir"] for c in engines)
    return [
        "## How to reproduce",
        "",
        "```bash",
        *exports,
        f"llm-gateway bench --models {folders}   # add --quick for a run under 5 minutes",
        "```",
        "",
        f"This run: `{results['command']}`. The raw figures, every repetition included, are in results.json.",
        "",
    ]


def render(results: dict[str, Any], image_dir: str = "img") -> str:
    sections = [
        header(results), targets_section(results), single_section(results), concurrency_section(results),
        health_section(results), memory_section(results), quality_section(results), charts_section(image_dir),
        notes_section(results), reproduce_section(results),
    ]  # fmt: skip
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"
