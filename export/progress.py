"""Per-stage progress lines with timings; third-party chatter goes to a log file, not the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class Progress:
    def __init__(self, stages: list[str], quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stages = stages
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.timings: dict[str, float] = {}
        self.log_path: Path | None = None

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        index = self.stages.index(name) + 1
        label = f"[{index}/{len(self.stages)}] {name:<9}"
        if not self.quiet and self.stream.isatty():
            print(f"{label} {detail} ...", end="\r", file=self.stream, flush=True)
        start = time.perf_counter()
        ok = False
        try:
            with self._captured():
                yield
            ok = True
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = round(elapsed, 2)
            status = "done" if ok else "FAILED"
            self.say(f"{label} {status} in {elapsed:6.1f}s  {detail}".rstrip())

    @contextlib.contextmanager
    def _captured(self) -> Iterator[None]:
        """Send fd 1 and 2 (Python and C output alike) to the log file while a stage runs."""
        if self.log_path is None:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with self.log_path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
