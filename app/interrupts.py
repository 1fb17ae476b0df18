"""SIGINT and SIGTERM as KeyboardInterrupt, for the CLI commands that must clean up on the way out."""

from __future__ import annotations

import signal


def trap_signals() -> list[int]:
    """SIGINT and SIGTERM raise KeyboardInterrupt from now on (SIGINT too, which a background shell may have set
    to ignore). Returns the list of signals caught: a signal may surface as another exception from inside a C
    extension, and a non-empty list tells the caller it was an interrupt all the same."""
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return caught
