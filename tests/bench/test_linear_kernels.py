"""benchmarks/linear_kernels.py: each kernel matches numpy's product; the table has a row per row count."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from benchmarks.linear_kernels import KERNELS, MAX_REL_ERROR, measure
from tests.conftest import REPO


def test_every_kernel_computes_the_product_it_is_timed_on():
    timings = measure(k=128, n=64, rows=[3, 1], rounds=1, threads=1, calls=2)
    assert [(t.kernel, t.rows) for t in timings] == [(name, m) for m in (3, 1) for name in KERNELS]
    assert all(0 <= t.rel_error < MAX_REL_ERROR and np.isfinite(t.ms) and t.ms > 0 for t in timings)


def test_cli_prints_the_isa_and_one_row_per_row_count():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.linear_kernels", "--k", "64", "--n", "32", "--rows", "4,1",
         "--rounds", "1", "--threads", "1", "--calls", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ISA class" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 4", "| 1"]
    assert all(row.count(" ms") == len(KERNELS) for row in rows)
