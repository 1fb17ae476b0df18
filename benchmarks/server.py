"""`llm-gateway serve` as a child process, shared by the tests and the bench: start it on a free loopback
port with an environment, wait for /v1/ready, read its JSON log lines, its /metrics and its peak RSS, and
stop it with SIGTERM (the way an orchestrator would), returning its exit code.

Every process started here (and by the bench's workers) is tracked, so that `kill_leftovers` can make
sure none outlives the bench, whatever interrupts the run; it also kills any other child of this process
(a signal that lands inside `subprocess.Popen`, after its fork, leaves a child no Popen object holds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
SERVE = (sys.executable, "-m", "llm_gateway", "serve")
SERVE_NAME = "`llm-gateway serve`"

_started: list[subprocess.Popen] = []


class ServerError(Exception):
    """The server did not come up, or died; the message holds the end of its log."""


def spawn(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen, remembered until `kill_leftovers`."""
    proc = subprocess.Popen(list(cmd), **kwargs)
    _started.append(proc)
    return proc


def kill_leftovers() -> None:
    """Kill and reap every started process that is still running, then every other child of this process."""
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    for pid in child_pids(os.getpid()):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def child_pids(parent: int) -> list[int]:
    """The live processes whose parent is `parent` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]  # after the command name
            if int(ppid) == parent and state != "Z":
                found.append(int(stat.parent.name))
    return found


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
    """Send `sig` (SIGKILL after `timeout`) to a running process and return its exit code (-N: signal N)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str,
    timeout: float,
    expect: int = 200,
    exited: Callable[[], int | None] = lambda: None,
    log: Callable[[], str] = str,
    path: str = "/v1/ready",
    name: str = SERVE_NAME,
) -> float:
    """Poll GET {url}{path} until it answers `expect`; the seconds it took. Raises ServerError when
    `exited()` reports an exit code first, or after `timeout` seconds, with `log()` in the message."""
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() - start < timeout:
            code = exited()
            if code is not None:
                raise ServerError(f"{name} exited with {code}:\n{log()}")
            try:
                if client.get(path).status_code == expect:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise ServerError(f"{name} was not ready after {timeout:.0f}s:\n{log()}")


class ServeProcess:
    """One `llm-gateway serve --model MODEL --port PORT` with exactly the environment `env`; stdout and
    stderr go to `log_dir/server-PORT.log`. A subclass serves another program the same way (its `name`,
    readiness route and log name; `_launch` with its command line for a port)."""

    name = SERVE_NAME
    ready_path = "/v1/ready"
    log_name = "server"

    def __init__(self, model: Path, env: Mapping[str, str], log_dir: Path, serve: Sequence[str] = SERVE) -> None:
        self._launch(lambda port: [*serve, "--model", str(model), "--port", str(port)], env, log_dir)

    def _launch(self, command: Callable[[int], list[str]], env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = log_dir / f"{self.log_name}-{self.port}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.started = time.monotonic()
        self.proc = spawn(
            command(self.port), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=dict(env)
        )

    @property
    def host(self) -> str:
        return HOST

    def wait_ready(self, timeout: float = 120.0, expect: int = 200) -> float:
        """Seconds from the process start until GET `ready_path` first answered `expect`."""
        wait_ready(self.url, timeout, expect, self.proc.poll, self.log_tail, self.ready_path, self.name)
        return time.monotonic() - self.started

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` (SIGKILL after `timeout`) and return the exit code (-N: killed by signal N)."""
        code = stop_process(self.proc, sig, timeout)
        self._log.close()
        return code

    def log_lines(self) -> list[dict]:
        """The JSON log lines written so far (other lines skipped)."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def wait_log(self, match: Callable[[dict], bool], timeout: float = 15.0) -> list[dict]:
        """The JSON log lines that `match`, once there is at least one: the access line of a request is written
        when its response ends, which can be just after the client has read the whole body."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_lines() if match(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {name{labels}: value}, parsed with prometheus_client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def peak_rss_bytes(self) -> int:
        """VmHWM: the process's peak resident set, the same figure as its ru_maxrss."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise ServerError("no VmHWM in /proc status")
