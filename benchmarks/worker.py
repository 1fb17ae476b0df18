"""One contestant in a process of its own, and the bench's handle on it.

Its own process, so that its peak RSS (ru_maxrss) is its own and a PyTorch import never inflates the
engine's figure. The child, `python -m benchmarks.worker SPEC_JSON`, loads the contestant, then answers
one JSON line per request on the protocol channel (the original stdout); library chatter printed to
stdout or stderr goes to the worker's log instead. The messages are the msgspec Structs below, tagged by
"type": the first reply is Ready (or Failed), then one reply per request; Quit ends the child.
"""

from __future__ import annotations

import os
import queue
import resource
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import msgspec

from benchmarks.contestants import ENGINE, HTTP, ORTMODEL, PYTORCH
from benchmarks.stats import Burst, StreamTiming

if TYPE_CHECKING:  # the child imports only what it runs, so that nothing inflates its peak RSS
    from benchmarks.contestants import Contestant
    from benchmarks.plan import EncodedPrompt, Plan


class Spec(msgspec.Struct, frozen=True):
    kind: str  # PYTORCH | ORTMODEL | ENGINE
    threads: int
    source: str | None = None  # the baseline's source spec (None: embedded)
    model_dir: str | None = None
    workdir: str | None = None


class PromptIds(msgspec.Struct, frozen=True, array_like=True):
    id: str
    ids: list[int]


class Warmup(msgspec.Struct, frozen=True, tag="warmup"):
    prompts: list[PromptIds]
    new_tokens: int


class Single(msgspec.Struct, frozen=True, tag="single"):
    prompts: list[PromptIds]
    new_tokens: int


class BurstOf(msgspec.Struct, frozen=True, tag="burst"):
    """`clients` copies of one prompt submitted at once (the engine only)."""

    prompt: PromptIds
    clients: int
    new_tokens: int


class Quit(msgspec.Struct, frozen=True, tag="quit"):
    pass


class Ready(msgspec.Struct, frozen=True, tag="ready"):
    load_s: float
    rss_bytes: int


class Notes(msgspec.Struct, frozen=True, tag="notes"):
    notes: list[str]


class Runs(msgspec.Struct, frozen=True, tag="runs"):
    runs: list[StreamTiming]
    wall_s: float = 0.0  # bursts: from the submissions to the last token


class Stopped(msgspec.Struct, frozen=True, tag="stopped"):
    peak_rss_bytes: int


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    error: str


Request = Warmup | Single | BurstOf | Quit
Reply = Ready | Notes | Runs | Stopped | Failed
T = TypeVar("T", Ready, Notes, Runs, Stopped)


class WorkerError(Exception):
    """A worker failed; the message names the contestant and where its log is."""


def _pairs(prompts: list[EncodedPrompt]) -> list[PromptIds]:
    return [PromptIds(p.id, p.ids) for p in prompts]


class Worker:
    """The runner's handle on PyTorch, ORTModel or the in-process engine in a worker subprocess: start it,
    ask it things with a timeout, stop it."""

    def __init__(self, contestant: Contestant, plan: Plan, source: str | None, workdir: Path) -> None:
        from benchmarks.server import spawn

        if contestant.kind == HTTP:
            raise ValueError("the HTTP contestant runs `llm-gateway serve`, not a worker")
        model_dir = str(contestant.model_dir) if contestant.kind in (ORTMODEL, ENGINE) else None
        spec = Spec(contestant.kind, plan.threads, source if contestant.kind == PYTORCH else None, model_dir)
        if model_dir is not None:
            spec = msgspec.structs.replace(spec, workdir=str(workdir))
        self.name = contestant.id
        self.kind = contestant.kind
        self.plan = plan
        self.log_path = workdir / "logs" / f"{contestant.id.replace(':', '-')}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self.proc = spawn(
            [sys.executable, "-m", "benchmarks.worker", msgspec.json.encode(spec).decode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env,
        )  # fmt: skip
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"bench-{self.name}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> float:
        return self._wait(Ready, self.plan.load_timeout_s).load_s

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]:
        notes = self._ask(Warmup(_pairs(prompts), new_tokens), Notes).notes
        if self.kind == ENGINE and clients > 1:  # touch the batch shapes and KV pages the bursts will use
            self.burst(prompts[0], clients, new_tokens, probe=False)
        return notes

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]:
        return self._ask(Single(_pairs(prompts), new_tokens), Runs).runs

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst:
        reply = self._ask(BurstOf(PromptIds(prompt.id, prompt.ids), clients, new_tokens), Runs)
        return Burst(reply.runs, reply.wall_s)

    def finish(self, timeout: float = 60.0) -> int:
        """Stop the worker; return its peak RSS in bytes."""
        reply = self._ask(Quit(), Stopped, timeout)
        self.proc.wait(timeout=timeout)
        self._log.close()
        return reply.peak_rss_bytes

    def abort(self) -> None:
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

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)  # the worker closed its channel: it exited

    def _ask(self, request: Request, expected: type[T], timeout: float | None = None) -> T:
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.name}: the worker is not running; see {self.log_path}")
        assert self.proc.stdin is not None
        self.proc.stdin.write(msgspec.json.encode(request).decode() + "\n")
        self.proc.stdin.flush()
        return self._wait(expected, self.plan.step_timeout_s if timeout is None else timeout)

    def _wait(self, expected: type[T], timeout: float) -> T:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.abort()
            raise WorkerError(f"{self.name}: no reply within {timeout:.0f}s; see {self.log_path}") from None
        if line is None:
            code = self.proc.wait(timeout=10)
            raise WorkerError(f"{self.name}: the worker exited ({code}); see {self.log_path}\n{self.log_tail()}")
        reply = msgspec.json.decode(line, type=Reply)
        if isinstance(reply, Failed):
            raise WorkerError(f"{self.name}: {reply.error}; see {self.log_path}\n{self.log_tail()}")
        if not isinstance(reply, expected):
            raise WorkerError(f"{self.name}: expected {expected.__name__}, got {type(reply).__name__}")
        return reply


# --- the child side --------------------------------------------------------------------------------------


def _protocol_channel() -> TextIO:
    """Keep the real stdout for replies; point fd 1 at stderr (the log) for everything else."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return channel


def _load(spec: Spec) -> Any:
    if spec.kind == PYTORCH:
        from benchmarks.huggingface import TorchBaseline

        return TorchBaseline(spec.source, spec.threads)
    if spec.kind == ORTMODEL and spec.model_dir and spec.workdir:
        from benchmarks.huggingface import OrtModelContestant

        return OrtModelContestant(Path(spec.model_dir), Path(spec.workdir), spec.threads)
    if spec.kind == ENGINE and spec.model_dir:
        from benchmarks.ours import EngineContestant

        return EngineContestant(Path(spec.model_dir), spec.threads)
    raise ValueError(f"cannot run contestant kind {spec.kind!r} from {spec}")


def _handle(contestant: Any, request: Request) -> Reply:
    match request:
        case Warmup(prompts, new_tokens):
            contestant.warmup([(p.id, p.ids) for p in prompts], new_tokens)
            return Notes(contestant.notes)
        case Single(prompts, new_tokens):
            return Runs([contestant.generate(p.ids, new_tokens, p.id) for p in prompts])
        case BurstOf(prompt, clients, new_tokens):
            runs, wall = contestant.burst(prompt.ids, clients, new_tokens, prompt.id)
            return Runs(runs, wall)
    raise ValueError(f"unexpected request {request!r}")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(argv: list[str]) -> int:
    channel = _protocol_channel()

    def reply(message: Reply) -> None:
        channel.write(msgspec.json.encode(message).decode() + "\n")
        channel.flush()

    spec = msgspec.json.decode(argv[0], type=Spec)
    start = time.perf_counter()
    try:
        contestant = _load(spec)
    except Exception as exc:
        traceback.print_exc()
        reply(Failed(f"loading failed: {type(exc).__name__}: {exc}"))
        return 1
    reply(Ready(time.perf_counter() - start, peak_rss_bytes()))
    for line in sys.stdin:
        request = msgspec.json.decode(line, type=Request)
        if isinstance(request, Quit):
            if hasattr(contestant, "close"):
                contestant.close()
            reply(Stopped(peak_rss_bytes()))
            return 0
        try:
            reply(_handle(contestant, request))
        except Exception as exc:
            traceback.print_exc()
            reply(Failed(f"{type(exc).__name__}: {exc}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
