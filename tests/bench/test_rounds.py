"""Rounds disturbed by other processes are thrown away whole and repeated; CPU accounting on fixed marks."""

import os

import pytest

from benchmarks.drivers import Burst
from benchmarks.figures import Measured
from benchmarks.machine import CpuMark, foreign_share, process_cpu_seconds
from benchmarks.rounds import RoundLog
from benchmarks.timing import StreamTiming

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
    assert summary["discarded_round_shares"] == [0.5]
    assert summary["round_shares"] == [pytest.approx(0.01 / CORES, abs=1e-3), 0.5]
    assert summary["share"] == 0.5


def test_rollback_forgets_a_whole_round():
    t = StreamTiming("p", (0.1, 0.2), 2)
    m = Measured(singles=[[t]], bursts={1: [Burst([t], 0.2)]})
    before = m.marks()
    m.singles.append([t])
    m.bursts[1].append(Burst([t], 0.3))
    m.bursts[16] = [Burst([t] * 16, 0.5)]
    m.rollback(before)
    assert len(m.singles) == 1 and len(m.bursts[1]) == 1 and 16 not in m.bursts


def test_process_cpu_seconds_reads_a_live_process_and_zero_for_a_gone_one():
    sum(i * i for i in range(200_000))  # burn a little CPU
    assert process_cpu_seconds(os.getpid()) > 0
    assert process_cpu_seconds(2**22 + 12345) == 0.0
