"""The runner's view of a contestant: one interface over a worker process or the HTTP service.

ready() -> load seconds; warmup(...) -> notes; single(...) -> [StreamTiming];
burst(...) -> Burst; finish() -> peak RSS bytes; abort()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchmarks.contestants import ENGINE, ORTMODEL, PYTORCH, Contestant
from benchmarks.plan import Plan
from benchmarks.promptset import EncodedPrompt
from benchmarks.timing import StreamTiming
from benchmarks.workers import WorkerProcess


@dataclass(slots=True)
class Burst:
    timings: list[StreamTiming]
    wall_s: float
    health_latencies_s: list[float] = field(default_factory=list)
    health_errors: list[str] = field(default_factory=list)


class Driver(Protocol):
    @property
    def pid(self) -> int: ...

    def ready(self) -> float: ...

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]: ...

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]: ...

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst: ...

    def finish(self) -> int: ...

    def abort(self) -> None: ...


def _pairs(prompts: list[EncodedPrompt]) -> list[list]:
    return [[p.id, p.ids] for p in prompts]


class WorkerDriver:
    """PyTorch, ORTModel or the in-process engine, in a worker subprocess of its own."""

    def __init__(self, contestant: Contestant, plan: Plan, source: str | None, workdir: Path) -> None:
        spec = {"kind": contestant.kind, "threads": plan.threads}
        if contestant.kind == PYTORCH:
            spec["source"] = source
        elif contestant.kind in (ORTMODEL, ENGINE):
            spec["model_dir"] = str(contestant.model_dir)
            spec["workdir"] = str(workdir)
        self.kind = contestant.kind
        self.plan = plan
        log = workdir / "logs" / f"{contestant.id.replace(':', '-')}.log"
        self.worker = WorkerProcess(contestant.id, spec, log)

    @property
    def pid(self) -> int:
        return self.worker.proc.pid

    def ready(self) -> float:
        return float(self.worker.wait_reply(self.plan.load_timeout_s)["load_s"])

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]:
        reply = self.worker.request(
            {"op": "warmup", "prompts": _pairs(prompts), "new_tokens": new_tokens}, self.plan.step_timeout_s
        )
        if self.kind == ENGINE and clients > 1:  # touch the batch shapes and KV pages the bursts will use
            self.burst(prompts[0], clients, new_tokens, probe=False)
        return list(reply["notes"])

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]:
        reply = self.worker.request(
            {"op": "single", "prompts": _pairs(prompts), "new_tokens": new_tokens}, self.plan.step_timeout_s
        )
        return [StreamTiming.from_dict(run) for run in reply["runs"]]

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst:
        request = {"op": "burst", "prompt": [prompt.id, prompt.ids], "clients": clients, "new_tokens": new_tokens}
        reply = self.worker.request(request, self.plan.step_timeout_s)
        return Burst([StreamTiming.from_dict(run) for run in reply["runs"]], float(reply["wall_s"]))

    def finish(self) -> int:
        return self.worker.quit()

    def abort(self) -> None:
        self.worker.kill()
