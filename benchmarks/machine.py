"""What the figures were measured on (CPU, cores, memory, library versions, git commit), and how much of
the CPU other processes took meanwhile.

Rounds disturbed by other processes: measured, repeated, and accounted for in the report.

Another process on a 2-core machine slows contestants unevenly (PyTorch's thread pool stalls far more
than ORT's when a core is taken), which paired ratios cannot cancel. So the CPU that other processes
used is measured over each round; a round where they took more than DISTURBED of the machine is thrown
away whole (every contestant's figures of that round) and run again, up to `reps` extra times.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import msgspec

from app.engine.cpu import cpu_features, parse_cpuinfo

LIBRARIES = (
    "llm-gateway", "onnxruntime", "numpy", "tokenizers", "torch", "transformers", "optimum", "optimum-onnx",
    "onnx", "litestar", "uvicorn", "httpx", "matplotlib",
)  # fmt: skip
DISTURBED = 0.10  # other processes' share of the CPU above which a round is repeated


class Cpu(msgspec.Struct):
    model: str
    key_flags: list[str]
    flags: list[str] = []
    isa: str = ""  # app.engine.cpu.Isa: the class the figures were measured on


class Git(msgspec.Struct):
    sha: str | None
    dirty: bool | None


class Machine(msgspec.Struct):
    cpu: Cpu
    cores: int | None
    memory_bytes: int | None
    libraries: dict[str, str | None]
    git: Git
    os: str = ""
    python: str = ""


class ForeignLoad(msgspec.Struct):
    """The CPU other processes used during the measured rounds."""

    cpu_seconds: float
    share: float  # the worst kept round: that is what can bias a ratio
    round_shares: list[float] = []
    discarded_round_shares: list[float] = []


def cpu_info(cpuinfo: str) -> Cpu:
    """Model name, flags and ISA class from the text of /proc/cpuinfo (first processor)."""
    model, flags = parse_cpuinfo(cpuinfo)
    features = cpu_features(cpuinfo)
    return Cpu(model, features.flags, flags, str(features.isa))


def memory_bytes(meminfo: str) -> int | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def busy_cpu_seconds(stat: str) -> float:
    """CPU time the whole machine spent busy, from the text of /proc/stat (all cores together)."""
    fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc/<pid>/stat (0 once it is gone)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuMark:
    busy: float  # machine busy CPU-seconds
    own: float  # this process tree's CPU-seconds
    wall: float


def cpu_mark(pids: list[int]) -> CpuMark:
    """Where the CPU counters stand; `pids` are the live children (reaped ones are in own_cpu_seconds)."""
    own = own_cpu_seconds() + sum(process_cpu_seconds(pid) for pid in pids)
    return CpuMark(busy_cpu_seconds(_read("/proc/stat") or "cpu 0"), own, time.monotonic())


def foreign_share(start: CpuMark, end: CpuMark) -> tuple[float, float]:
    """(CPU-seconds, share of the machine) that other processes used between two marks."""
    foreign = max(0.0, (end.busy - start.busy) - (end.own - start.own))
    capacity = (end.wall - start.wall) * (os.cpu_count() or 1)
    return foreign, (foreign / capacity if capacity > 0 else 0.0)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def git_state(repo: Path) -> Git:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return Git(sha, bool(status) if status is not None else None)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe_machine() -> Machine:
    return Machine(
        cpu=cpu_info(_read("/proc/cpuinfo")),
        cores=os.cpu_count(),
        memory_bytes=memory_bytes(_read("/proc/meminfo")),
        libraries=library_versions(),
        git=git_state(Path(__file__).resolve().parent.parent),
        os=platform.platform(),
        python=platform.python_version(),
    )


@dataclass(slots=True)
class RoundLog:
    kept: list[tuple[float, float]] = field(default_factory=list)  # (foreign CPU-seconds, share) per kept round
    discarded: list[float] = field(default_factory=list)  # shares of the rounds thrown away

    def judge(self, start: CpuMark, end: CpuMark, retries_left: bool) -> bool:
        """Record a round; True to keep it, False when it was disturbed and may be repeated."""
        seconds, share = foreign_share(start, end)
        if share > DISTURBED and retries_left:
            self.discarded.append(round(share, 3))
            return False
        self.kept.append((seconds, share))
        return True

    def summary(self) -> ForeignLoad:
        seconds = sum(s for s, _ in self.kept)
        shares = [round(share, 3) for _, share in self.kept]
        return ForeignLoad(round(seconds, 1), max(shares) if shares else 0.0, shares, self.discarded)
