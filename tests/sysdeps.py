"""Debian packages the suite needs (a browser, image tools): installed on first use when missing, since a fresh
machine and CI start without them. Fails loudly rather than skipping: a test that cannot run is a failure."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading

_LOCK = threading.Lock()
_APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


@functools.cache
def _apt_update() -> None:
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=900, env=_APT_ENV)


def ensure_apt(command: str, package: str | None = None) -> str:
    """The path of `command`, after `apt-get install package` (default: the command's own name) if it is missing."""
    with _LOCK:
        found = shutil.which(command)
        if found:
            return found
        _apt_update()
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", package or command],
            capture_output=True,
            text=True,
            timeout=1800,
            env=_APT_ENV,
        )
        found = shutil.which(command)
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"could not install {package or command!r} for {command!r}:\n{proc.stderr[-2000:]}")
        return found
