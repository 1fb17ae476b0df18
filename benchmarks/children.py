"""Every process the bench starts, so that none outlives it, whatever interrupts the run.

The drivers stop their own processes on every path they know of; a SIGTERM that lands between a `Popen`
and the driver that would own it is what `kill_leftovers` is for.
"""

from __future__ import annotations

import subprocess
from typing import Any

_started: list[subprocess.Popen] = []


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, **kwargs)
    _started.append(proc)
    return proc


def kill_leftovers() -> None:
    """Kill and reap every started process that is still running."""
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
