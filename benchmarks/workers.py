"""The parent's handle on one worker process: start it, ask it things with a timeout, stop it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from benchmarks.children import spawn


class WorkerError(Exception):
    """A worker failed; the message names the contestant and where its log is."""


class WorkerProcess:
    def __init__(self, name: str, spec: dict[str, Any], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self.proc = spawn(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"bench-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)  # the worker closed its channel: it exited

    def wait_reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"{self.name}: no reply within {timeout:.0f}s; see {self.log_path}") from None
        if line is None:
            code = self.proc.wait(timeout=10)
            raise WorkerError(f"{self.name}: the worker exited ({code}); see {self.log_path}\n{self.log_tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(f"{self.name}: {reply.get('error')}; see {self.log_path}\n{self.log_tail()}")
        return reply

    def request(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.name}: the worker is not running; see {self.log_path}")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(payload) + "\n")
        self.proc.stdin.flush()
        return self.wait_reply(timeout)

    def quit(self, timeout: float = 60.0) -> int:
        """Stop the worker; return its peak RSS in bytes."""
        reply = self.request({"op": "quit"}, timeout)
        self.proc.wait(timeout=timeout)
        self._log.close()
        return int(reply["peak_rss_bytes"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])
