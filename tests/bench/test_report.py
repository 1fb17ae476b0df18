"""results.json -> targets -> markdown report and charts, on a synthetic run built through the real code path."""

import json
import re
from pathlib import Path

import msgspec
import pytest
from msgspec import UNSET

from app.engine.manifest import Manifest
from benchmarks.contestants import build_contestants
from benchmarks.machine import ForeignLoad, Git, Machine, cpu_info
from benchmarks.plan import make_plan
from benchmarks.report import render, write_outputs
from benchmarks.results import PromptInfo, RunInfo, build_results, evaluate, read_results
from benchmarks.stats import Burst, Measured, StreamTiming, figures

LONG = {"long"}


def manifest(graph: str) -> Manifest:
    data = {
        "name": "Tiny", "created_at": "2026-01-01T00:00:00+00:00",
        "source": {"kind": "embedded", "spec": "embedded:x", "name": "Tiny", "sha256": "ab"},
        "graph": graph, "quant": "int8", "recipe": {"method": "matmulnbits", "bits": 8},
        "model": {"architecture": "LlamaForCausalLM", "model_type": "llama", "num_layers": 2,
                  "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 8, "hidden_size": 32, "vocab_size": 100,
                  "context_length": 256, "bos_token_id": 1, "eos_token_ids": [2], "pad_token_id": 2},
        "io": {"onnx_file": "model.int8.onnx", "opset": 21, "inputs": [], "outputs": []},
        "versions": {}, "files": {}, "size_bytes": 123_000_000, "timings_s": {},
        "validation": {"passed": True, "heldout_tokens": 807, "perplexity_torch": 21.8, "perplexity_onnx": 22.0,
                       "perplexity_increase_pct": 0.9, "top1_agreement": 0.96,
                       "thresholds": {"max_ppl_increase_pct": 2, "min_top1_agreement": 0.9,
                                      "require_greedy_match": False},
                       "greedy": {"prompts": 4, "new_tokens": 32, "exact_prompts": 3, "tie_divergences": 0,
                                  "matched_tokens": 100, "total_tokens": 128}},
    }  # fmt: skip
    return msgspec.convert(data, Manifest)


def stream(prompt_id, ttft, gap, tokens=8):
    return StreamTiming(prompt_id, tuple(ttft + gap * i for i in range(tokens)), tokens)


def run_of(gap, ttft, reps=3, levels=(1, 16, 32), health=()):
    m = Measured(load_s=1.0, peak_rss_bytes=450_000_000)
    for r in range(reps):
        m.singles.append([stream("short", ttft, gap * (1 + 0.1 * r)), stream("long", 8 * ttft, gap)])
        for n in levels:
            m.bursts.setdefault(n, []).append(Burst([stream("short", ttft, gap)] * n, wall_s=gap * 8 * (1 + n / 8),
                                                    health_latencies_s=list(health)))  # fmt: skip
    return m


@pytest.fixture
def results():
    plan = make_plan(quick=True, reps=3)
    folders = [(Path("models/a-gqa"), manifest("gqa")), (Path("models/a-opt"), manifest("optimum"))]
    contestants = build_contestants(folders, http=True, source_size=(98_000_000, "x.gguf"))
    measured = {
        "pytorch": run_of(0.060, 0.15, levels=()),
        "ortmodel:optimum-int8": run_of(0.040, 0.10, levels=()),
        "engine:gqa-int8": run_of(0.008, 0.04),
        "engine:optimum-int8": run_of(0.050, 0.20),
        "http:gqa-int8": run_of(0.0085, 0.045, health=[0.001, 0.002, 0.030]),
    }
    figs = {cid: figures(m, LONG) for cid, m in measured.items()}
    machine = Machine(
        cpu=cpu_info("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f\n"),
        cores=2,
        memory_bytes=2**34,
        libraries={"onnxruntime": "1.32.0"},
        git=Git(sha="abc", dirty=False),
    )
    info = RunInfo(command="llm-gateway bench --quick", started_at="2026-01-01T00:00:00+00:00", duration_s=100.0)
    prompts = [PromptInfo("short", "short", "chat", 37), PromptInfo("long", "long", "plain", 507)]
    return build_results(plan, contestants, measured, figs, info, machine, prompts)


def test_targets_are_judged_from_paired_figures(results):
    targets = {t.name: msgspec.to_builtins(t) for t in results.targets}
    assert len(targets) == 7
    http_decode = targets["HTTP single-stream decode vs PyTorch"]  # issue 16: >= 7x, 0.060 / 0.0085 = 7.06x
    assert http_decode["status"] == "PASS" and http_decode["value"] == pytest.approx(0.060 / 0.0085, rel=1e-6)
    ttft = targets["HTTP long-prompt TTFT vs PyTorch"]  # 8 x 0.15 s against 8 x 0.045 s
    assert ttft["status"] == "PASS" and ttft["value"] == pytest.approx(0.15 / 0.045, rel=1e-6)
    decode = targets["single-stream decode vs PyTorch"]
    assert decode["status"] == "PASS"
    assert decode["value"] == pytest.approx(7.5, rel=1e-6)  # 0.060 / 0.008, the same in every repetition
    assert targets["engine peak RSS"]["status"] == "PASS"
    assert targets["engine peak RSS"]["value"] == pytest.approx(450.0)
    http = targets["HTTP single-client streamed tokens/s vs engine"]
    assert http["status"] == "PASS"
    assert http["value"] == pytest.approx(0.008 / 0.0085, rel=1e-6)
    assert targets["/v1/health latency under load"]["status"] == "PASS"
    agg = targets["aggregate decode at 16 concurrent vs PyTorch single-stream"]
    assert agg["status"] in ("PASS", "FAIL")
    assert agg["value"] > 1


def test_targets_say_not_measured_when_a_contestant_failed(results):
    engine = next(c for c in results.contestants if c.id == "engine:gqa-int8")
    for key in ("single", "vs_pytorch", "concurrency"):
        setattr(engine, key, UNSET)
    engine.peak_rss_bytes = None
    engine.error = "WorkerError: boom"
    statuses = {t.name: t.status for t in evaluate(results)}
    assert statuses["single-stream decode vs PyTorch"] == "NOT MEASURED"
    assert statuses["engine peak RSS"] == "NOT MEASURED"


def test_report_has_every_section_with_numbers(results):
    text = render(results)
    for heading in (
        "## Targets",
        "## Single stream",
        "## Concurrency",
        "## /v1/health under load",
        "## Memory and size",
        "## Quality against PyTorch",
        "## Charts",
        "## Skipped, failed and notes",
    ):
        assert heading in text
    single = text.split("## Single stream")[1].split("## Concurrency")[0]
    rows = [line for line in single.splitlines() if line.startswith("| ") and "contestant" not in line]
    assert len(rows) == 5  # the skipped ORTModel on the gqa folder has no row
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert all(re.match(r"^[\d.]+x? \([\d.]+–[\d.]+\)$|^1 \(baseline\)$", c) for c in cells), row
    assert "skipped. ORTModelForCausalLM cannot run a GroupQueryAttention graph" in text
    assert "n/a" not in text.split("## Concurrency")[1].split("## Memory")[0]


def test_outputs_written(results, tmp_path):
    paths = write_outputs(results, tmp_path)
    assert json.loads(paths["results"].read_text())["targets"] == msgspec.to_builtins(results.targets)
    assert read_results(paths["results"]) == results  # the report and charts can be rebuilt from the file
    for key in ("decode", "throughput", "ttft"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert paths[key].stat().st_size > 10_000
    assert "](img/decode-tokens-per-s.png)" in paths["report"].read_text()


def test_report_warns_when_other_processes_took_the_cpu(results):
    results.foreign_load = ForeignLoad(cpu_seconds=120.0, share=0.30, discarded_round_shares=[0.5, 0.4])
    text = render(results)
    assert "**Warning: other processes took up to 30% of this machine's CPU" in text
    assert (
        "2 round(s) were repeated because other processes took more than 10% of the CPU during them (50%, 40%)" in text
    )
    results.foreign_load = ForeignLoad(cpu_seconds=1.0, share=0.01, discarded_round_shares=[])
    text = render(results)
    assert "Warning" not in text and "Other processes took at most 1.0% of the CPU during a measured round." in text
