"""`llm-gateway bench --quick` end to end on the real exported model: every contestant, every section,
numbers rather than placeholders. Its speed figures are reported, not asserted."""

import json
import math
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.engine.manifest import read_manifest
from benchmarks.server import child_pids
from tests.conftest import CLI, run_cli

SECTIONS = (
    "## Targets", "## Single stream", "## Concurrency", "## /v1/health under load", "## Memory and size",
    "## Quality against PyTorch", "## Charts", "## Skipped, failed and notes",
)  # fmt: skip
SINGLE = ("decode_tps", "ttft_short_s", "ttft_long_s", "itl_p50_s", "itl_p95_s")


def finite_summary(summary, reps):
    return (
        summary is not None
        and summary["n"] == reps
        and all(math.isfinite(v) and v > 0 for v in summary["values"])
        and summary["min"] <= summary["median"] <= summary["max"]
    )


@pytest.fixture(scope="module")
def quick_run(real_models, tmp_path_factory):
    default = real_models.default
    optimum = real_models.get("optimum", "int8")
    out = tmp_path_factory.mktemp("bench") / "out"
    proc = run_cli("bench", "--quick", "--models", str(default), str(optimum), "--out", str(out), timeout=900)
    return proc, out


@pytest.mark.real
@pytest.mark.timeout(1800)
def test_quick_run_measures_every_contestant(quick_run, real_models):
    proc, out = quick_run
    gqa = f"gqa-{read_manifest(real_models.default).quant}"  # the default variant: what auto chose here
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    reps = results["plan"]["reps"]
    clients = [str(n) for n in results["plan"]["clients"]]
    by_id = {c["id"]: c for c in results["contestants"]}
    measured = ["pytorch", "ortmodel:optimum-int8", f"engine:{gqa}", "engine:optimum-int8", f"http:{gqa}"]
    for cid in measured:
        c = by_id[cid]
        assert c["error"] is None and c["skipped"] is None, c
        assert all(finite_summary(c["single"][k], reps) for k in SINGLE), cid
        assert c["peak_rss_bytes"] > 100e6 and c["size_bytes"] > 50e6
    assert "GroupQueryAttention" in by_id[f"ortmodel:{gqa}"]["skipped"]
    for cid in (f"engine:{gqa}", f"http:{gqa}"):
        assert sorted(by_id[cid]["concurrency"], key=int) == clients
        for figs in by_id[cid]["concurrency"].values():
            assert finite_summary(figs["aggregate_tps"], reps) and finite_summary(figs["vs_pytorch_single"], reps)
    assert finite_summary(by_id[f"engine:{gqa}"]["vs_pytorch"]["decode_tps"], reps)
    assert by_id[f"http:{gqa}"]["health"]["samples"] > 20
    # the first issues' five and issue 16's two HTTP-vs-PyTorch goals (no llama-server, no scenarios in --quick)
    assert [t["status"] in ("PASS", "FAIL") for t in results["targets"]] == [True] * 7
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["cpu"]["model"] and machine["libraries"]["onnxruntime"]
    assert re.fullmatch(r"[0-9a-f]{40}", machine["git"]["sha"] or "0" * 40)


@pytest.mark.real
def test_quick_run_report_and_charts(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for heading in SECTIONS:
        assert heading in report
    targets = report.split("## Targets")[1].split("## Single stream")[0]
    assert len(re.findall(r"^- \*\*(PASS|FAIL)\*\* .*: [\d.]+ ?(x|MB|ms)\.", targets, re.M)) == 7, targets
    tables = report.split("## Single stream")[1].split("## Charts")[0]
    assert "n/a" not in tables and "nan" not in tables.lower()
    for name in ("decode-tokens-per-s.png", "throughput-vs-clients.png", "ttft-vs-clients.png"):
        png = out / "img" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"](img/{name})" in report
    # progress: one line per phase and round on stderr
    for phase in ("ready in", "warmed up in", "round 1/", "round 2/", "peak RSS", "target ", "wrote "):
        assert phase in proc.stderr, phase


def _describe(pid: int) -> str:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state + " " + Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:100]
    except OSError:
        return "gone"


@pytest.mark.real
@pytest.mark.timeout(300)
def test_sigterm_stops_workers_and_server_and_writes_nothing(real_models, tmp_path):
    """An orchestrator's SIGTERM mid-run: exit 130, one line, no report, no orphaned worker or server."""
    out = tmp_path / "out"
    cmd = [CLI, "bench", "--quick", "--models", str(real_models.default), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    children: set[int] = set()
    while len(children) < 3 and time.monotonic() < deadline:  # PyTorch, engine and server processes
        time.sleep(0.5)
        children = set(child_pids(proc.pid))
    assert len(children) >= 3, f"the bench did not start its contestants: {children}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; workers and server stopped" in err and "Traceback" not in err
    assert not (out / "report.md").exists() and not (out / "results.json").exists()
    time.sleep(1)
    left = {pid: _describe(pid) for pid in children if Path(f"/proc/{pid}").exists()}
    assert not left, left
