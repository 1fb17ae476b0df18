"""The machine: rounds disturbed by other processes are thrown away and repeated; CPU accounting on fixed
marks; /proc parsers."""

import os

import pytest

from benchmarks.machine import (
    CpuMark,
    RoundLog,
    busy_cpu_seconds,
    cpu_info,
    foreign_share,
    memory_bytes,
    process_cpu_seconds,
)

CORES = os.cpu_count() or 1


def mark(busy, own, wall):
    return CpuMark(busy=busy, own=own, wall=wall)


def test_foreign_share_is_busy_time_not_ours_over_the_machine():
    seconds, share = foreign_share(mark(100.0, 50.0, 0.0), mark(130.0, 70.0, 10.0))
    assert seconds == pytest.approx(10.0)
    assert share == pytest.approx(10.0 / (10.0 * CORES))
    assert foreign_share(mark(0, 0, 0), mark(5.0, 6.0, 1.0))[0] == 0.0  # clock skew never goes negative


def test_a_disturbed_round_is_dropped_while_retries_remain():
    log = RoundLog()
    quiet = (mark(0, 0, 0), mark(10.0 * CORES, 10.0 * CORES - 0.1, 10.0))
    busy = (mark(0, 0, 0), mark(10.0 * CORES, 5.0 * CORES, 10.0))  # others took half the machine
    assert log.judge(*quiet, retries_left=True)
    assert not log.judge(*busy, retries_left=True)
    assert log.judge(*busy, retries_left=False)  # out of retries: kept, and the report will warn
    summary = log.summary()
    assert summary.discarded_round_shares == [0.5]
    assert summary.round_shares == [pytest.approx(0.01 / CORES, abs=1e-3), 0.5]
    assert summary.share == 0.5


def test_process_cpu_seconds_reads_a_live_process_and_zero_for_a_gone_one():
    sum(i * i for i in range(200_000))  # burn a little CPU
    assert process_cpu_seconds(os.getpid()) > 0
    assert process_cpu_seconds(2**22 + 12345) == 0.0


def test_machine_parsers():
    info = cpu_info(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma avx512f avx512_vnni\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
    )
    assert info.model == "AMD EPYC"
    assert info.key_flags == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert memory_bytes("MemTotal:       24684084 kB\nMemFree: 1 kB\n") == 24684084 * 1024


def test_busy_cpu_seconds_counts_everything_but_idle_and_iowait():
    hz = os.sysconf("SC_CLK_TCK")
    stat = "cpu  100 5 20 1000 50 1 2 3 0 0\ncpu0 50 2 10 500 25 0 1 1 0 0\n"
    assert busy_cpu_seconds(stat) == pytest.approx((100 + 5 + 20 + 1 + 2 + 3) / hz)
