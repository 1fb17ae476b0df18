"""SIGINT and SIGTERM as KeyboardInterrupt, for the CLI commands that must clean up on the way out."""

from __future__ import annotations

import os
import signal
import sys
import traceback


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


def exit_code(exc: BaseException, caught: list[int], command: str, interrupted: str, internal: str) -> int:
    """The end of a CLI command that failed with `exc`: 130 when it was interrupted (by KeyboardInterrupt, or by
    a signal that surfaced as another exception), 1 for an unexpected error, with a one-line message either
    way (`LLM_GATEWAY_DEBUG=1` adds the traceback). Anything else (SystemExit, ...) goes on up."""
    if caught or isinstance(exc, KeyboardInterrupt):
        print(f"llm-gateway {command}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    if not isinstance(exc, Exception):
        raise exc
    if os.environ.get("LLM_GATEWAY_DEBUG"):
        traceback.print_exception(exc)
    print(f"llm-gateway {command}: internal error: {type(exc).__name__}: {exc}{internal}", file=sys.stderr)
    return 1
