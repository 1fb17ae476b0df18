"""`llm-gateway serve` as a subprocess: start it on a free port, wait for /v1/ready, read its peak RSS,
stop it with SIGTERM (the way an orchestrator would)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from app.config import PREFIX
from benchmarks.children import spawn


class ServerError(Exception):
    """The server did not come up, or died; the message holds the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(threads: int) -> dict[str, str]:
    """The environment for `llm-gateway serve`: this one without the user's LLM_GATEWAY_* settings, so that the
    server runs the same defaults as the in-process engine it is paired with (and no API keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return {**env, f"{PREFIX}THREADS": str(threads)}


class ServerProcess:
    host = "127.0.0.1"

    def __init__(self, model_dir: Path, threads: int, log_path: Path, ready_timeout: float) -> None:
        self.port = free_port()
        self.started = time.monotonic()
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = server_env(threads)
        cmd = [sys.executable, "-m", "llm_gateway", "serve", "--model", str(model_dir), "--port", str(self.port)]
        self.proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)
        self._ready_after: float | None = None
        self._failure: str | None = None
        # readiness is polled from the start, so the load time does not depend on when the caller asks
        self._poller = threading.Thread(target=self._poll, args=(ready_timeout,), name="bench-ready", daemon=True)
        self._poller.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self) -> float:
        """Seconds from the process start until GET /v1/ready first answered 200."""
        self._poller.join()
        if self._ready_after is None:
            raise ServerError(self._failure or f"`llm-gateway serve` was not ready:\n{self.log_tail()}")
        return self._ready_after

    def _poll(self, timeout: float) -> None:
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() - self.started < timeout:
                if self.proc.poll() is not None:
                    self._failure = f"`llm-gateway serve` exited with {self.proc.returncode}:\n{self.log_tail()}"
                    return
                try:
                    if client.get("/v1/ready").status_code == 200:
                        self._ready_after = time.monotonic() - self.started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self._failure = f"`llm-gateway serve` was not ready after {timeout:.0f}s:\n{self.log_tail()}"

    def peak_rss_bytes(self) -> int:
        """VmHWM: the process's peak resident set, the same figure as its ru_maxrss."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise ServerError("no VmHWM in /proc status")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])
