"""benchmarks/prefill_paths.py runs a graph under an accuracy-level override and prints one row per variant."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_prefill_paths_reports_every_variant(tiny_models):
    folder = tiny_models["gqa"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.prefill_paths", str(folder), "--levels", "graph,1",
         "--lengths", "8,16", "--rows", "1,2", "--reps", "1", "--spinning", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| fp32-")]
    assert [row.split(" | ")[0] for row in rows] == ["| fp32-Lgraph-t2-nospin", "| fp32-L1-t2-nospin"]
    assert all(row.count("cpu") == 4 for row in rows)  # 2 prefill lengths + 2 decode batch sizes
