"""Assemble `results.json`: the run's settings, the machine, and per contestant its figures, ratios to
the baseline, memory, size and quality. The report and the charts are drawn from this dict alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.engine.manifest import Manifest
from benchmarks.contestants import ENGINE, HTTP, PYTORCH, Contestant
from benchmarks.figures import Figures, Measured, burst_vs_single, figures, single_vs
from benchmarks.plan import Plan
from benchmarks.promptset import EncodedPrompt
from benchmarks.stats import Summary, percentile

SCHEMA = 1


def _dump(summary: Summary | None) -> dict | None:
    return None if summary is None else summary.as_dict()


def quality(manifest: Manifest | None) -> dict[str, Any]:
    """From the export's validation block (measured against PyTorch at export time), not recomputed."""
    if manifest is None:
        return {"reference": True, "note": "the reference: other contestants' quality is measured against it"}
    v = manifest.validation
    return {
        "reference": False,
        "perplexity": v.perplexity_onnx,
        "perplexity_pytorch": v.perplexity_torch,
        "perplexity_increase_pct": v.perplexity_increase_pct,
        "top1_agreement": v.top1_agreement,
        "heldout_tokens": v.heldout_tokens,
        "greedy_exact_prompts": v.greedy.exact_prompts,
        "greedy_prompts": v.greedy.prompts,
        "greedy_new_tokens": v.greedy.new_tokens,
        "source": "manifest.json validation block, written by `llm-gateway export` against PyTorch",
    }


def source_size(location: str, gguf_file: str | None) -> tuple[int, str]:
    if gguf_file:
        return os.path.getsize(Path(location) / gguf_file), f"{gguf_file} (GGUF, dequantized to fp32 when loaded)"
    folder = Path(location)
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")] if folder.is_dir() else []
    return sum(p.stat().st_size for p in weights), "weight files of the source folder"


def health_summary(latencies: list[float], errors: list[str], clients: int) -> dict[str, Any]:
    ms = [1000.0 * v for v in latencies]
    figures = {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms)} if ms else {}
    return {"clients": clients, "samples": len(ms), "errors": errors[:20], "error_count": len(errors), **figures}


def contestant_entry(
    c: Contestant, m: Measured | None, f: Figures | None, base: Figures | None, plan: Plan
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": c.id, "kind": c.kind, "label": c.label, "variant": c.variant,
        "model_dir": str(c.model_dir) if c.model_dir else None,
        "skipped": c.skipped, "error": m.error if m else None, "notes": c.notes,
        "load_s": m.load_s if m else None, "peak_rss_bytes": m.peak_rss_bytes if m else None,
        "size_bytes": c.size_bytes, "size_note": c.size_note,
        "quality": quality(c.manifest),
    }  # fmt: skip
    if f is None:
        return entry
    entry["single"] = {name: _dump(s) for name, s in f.single.items()}
    if base is not None and c.kind != PYTORCH:
        entry["vs_pytorch"] = {name: _dump(s) for name, s in single_vs(f, base).items()}
    vs_base = burst_vs_single(f, base) if base is not None else {}
    entry["concurrency"] = {
        str(n): {**{k: _dump(s) for k, s in figs.items()}, "vs_pytorch_single": _dump(vs_base.get(n))}
        for n, figs in f.bursts.items()
    }
    if c.kind == HTTP and m is not None:
        probes = m.bursts.get(plan.probe_level, [])
        entry["health"] = health_summary(
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
    run_info: dict[str, Any],
) -> dict[str, Any]:
    base = figs.get(PYTORCH)
    entries = [contestant_entry(c, measured.get(c.id), figs.get(c.id), base, plan) for c in contestants]
    engines = [c for c in contestants if c.kind == ENGINE]
    http = next((c for c in contestants if c.kind == HTTP), None)
    default_engine = engines[0].id if engines else None
    if http is not None and default_engine in figs and http.id in figs:
        single = single_vs(figs[http.id], figs[default_engine])
        next(e for e in entries if e["id"] == http.id)["vs_engine"] = {"decode_tps": _dump(single["decode_tps"])}
    pytorch = next(c for c in contestants if c.kind == PYTORCH)
    return {
        "schema": SCHEMA,
        **run_info,
        "plan": {
            "mode": plan.mode, "reps": plan.reps, "new_tokens": plan.new_tokens, "warmup_tokens": plan.warmup_tokens,
            "clients": list(plan.levels), "threads": plan.threads, "max_running": plan.max_running,
            "health_interval_s": plan.health_interval_s, "probe_clients": plan.probe_level,
        },
        "default_engine": default_engine,
        "default_http": http.id if http else None,
        "baseline": {"id": pytorch.id, "label": pytorch.label},
        "contestants": entries,
    }  # fmt: skip


def assemble(
    plan: Plan,
    contestants: list[Contestant],
    measured: dict[str, Measured],
    prompts: list[EncodedPrompt],
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """Figures, ratios and targets of a finished run, with the machine it ran on."""
    from benchmarks.machine import describe_machine
    from benchmarks.targets import evaluate

    long_ids = {p.id for p in prompts if p.prompt.length == "long"}
    figs = {cid: figures(m, long_ids) for cid, m in measured.items() if m.singles}
    info = {
        **run_info,
        "machine": describe_machine(),
        "prompts": [
            {"id": p.id, "length": p.prompt.length, "style": p.prompt.style, "tokens": len(p.ids)} for p in prompts
        ],
    }
    results = build_results(plan, contestants, measured, figs, info)
    results["targets"] = [t.as_dict() for t in evaluate(results)]
    return results
