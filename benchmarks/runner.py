"""The run: load every contestant, warm each up, then repeat rounds in which each contestant runs the
whole prompt set (and, for the engine and HTTP, every burst) in turn. Rounds alternate the order
(A..Z, then Z..A), so that a drift of the machine's speed does not favour whoever runs first."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks.contestants import ENGINE, HTTP, LLAMA, SERVED, Contestant
from benchmarks.machine import RoundLog, cpu_mark
from benchmarks.plan import EncodedPrompt, Plan
from benchmarks.scenario_results import ScenarioResults
from benchmarks.stats import Burst, Measured, StreamTiming, burst_rep, check_stream, single_stream_rep
from benchmarks.worker import Worker


class Driver(Protocol):
    """The runner's view of a contestant: a Worker process, the HttpService or the LlamaService."""

    @property
    def pid(self) -> int: ...

    def ready(self) -> float: ...  # load seconds

    def warmup(self, prompts: list[EncodedPrompt], new_tokens: int, clients: int) -> list[str]: ...  # notes

    def single(self, prompts: list[EncodedPrompt], new_tokens: int) -> list[StreamTiming]: ...

    def burst(self, prompt: EncodedPrompt, clients: int, new_tokens: int, probe: bool) -> Burst: ...

    def finish(self) -> int: ...  # peak RSS bytes

    def abort(self) -> None: ...


def bursting(contestants: list[Contestant], quick: bool) -> set[str]:
    """Who runs the concurrency bursts: the engine on every variant, the HTTP service and llama-server; with
    --quick, only the first (default) variant's engine, the HTTP service and llama-server."""
    engines = [c.id for c in contestants if c.kind == ENGINE]
    return {c.id for c in contestants if c.kind in SERVED} | set(engines[:1] if quick else engines)


class Progress:
    """One stderr line per step, stamped with the time since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 1)

    def say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.start)
        print(f"bench [{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Setup:
    plan: Plan
    prompts: list[EncodedPrompt]
    burst_prompt: EncodedPrompt
    source: str | None  # the baseline's source spec (None: embedded)
    workdir: Path
    bursting: set[str]  # contestant ids that also run the concurrency bursts


def make_driver(c: Contestant, setup: Setup) -> Driver:
    if c.kind == HTTP:
        from benchmarks.load import HttpService
        from benchmarks.scenarios import COLD_ENV

        assert c.model_dir is not None
        return HttpService(c.model_dir, setup.plan, setup.workdir, COLD_ENV)
    if c.kind == LLAMA:
        from benchmarks.llama_server import LlamaService, slot_context

        assert c.llama is not None
        slot_tokens = slot_context(setup.prompts, max(setup.plan.new_tokens, setup.plan.warmup_tokens))
        return LlamaService(c.llama, setup.plan, setup.workdir, slot_tokens)
    return Worker(c, setup.plan, setup.source, setup.workdir)


class Run:
    def __init__(self, contestants: list[Contestant], setup: Setup, progress: Progress) -> None:
        self.active = [c for c in contestants if not c.skipped]
        self.setup = setup
        self.progress = progress
        self.measured = {c.id: Measured() for c in self.active}
        self.drivers: dict[str, Driver] = {}
        self.long_ids = {p.id for p in setup.prompts if p.prompt.length == "long"}
        self.rounds = RoundLog()
        self.scenarios: ScenarioResults | None = None
        self.scenario_error: str | None = None

    def execute(self) -> dict[str, Measured]:
        try:
            self._load()
            self._warm_up()
            self._rounds()
            self._scenarios()
            for c in self.active:
                self._guarded(c, lambda c=c: self._finish(c))
        finally:
            for c in self.active:
                if c.id in self.drivers and self.measured[c.id].peak_rss_bytes is None:
                    self.drivers[c.id].abort()
        return self.measured

    def _rounds(self) -> None:
        reps = self.setup.plan.reps
        attempts = 0
        while len(self.rounds.kept) < reps:
            attempts += 1
            rep = len(self.rounds.kept)
            marks = {cid: m.marks() for cid, m in self.measured.items()}
            start = cpu_mark(self._pids())
            order = self.active if rep % 2 == 0 else list(reversed(self.active))
            for c in order:
                self._guarded(c, lambda c=c, rep=rep: self._round(c, rep))
            if not self.rounds.judge(start, cpu_mark(self._pids()), retries_left=attempts < 2 * reps):
                for cid, m in self.measured.items():
                    m.rollback(marks[cid])
                share = self.rounds.discarded[-1]
                self.progress.say(f"round {rep + 1}: other processes took {100 * share:.0f}% of the CPU; repeating it")

    def _scenarios(self) -> None:
        """Issues 11 and 12's scenarios on two servers of their own (benchmarks/scenarios.py), after the rounds."""
        http = next((c for c in self.active if c.kind == HTTP and self._ok(c)), None)
        if not self.setup.plan.scenarios or http is None or http.model_dir is None:
            return
        from benchmarks.scenarios import run_scenarios

        short = self.setup.burst_prompt.prompt
        document = next(
            p.prompt.text for p in self.setup.prompts if (p.prompt.length, p.prompt.style) == ("long", "plain")
        )
        try:
            run = run_scenarios(http.model_dir, self.setup.plan, self.setup.workdir, short, document, self.progress.say)
            self.scenarios = run.figures()
        except Exception as exc:  # the scenarios failing must not lose the rounds' figures
            self.scenario_error = f"{type(exc).__name__}: {exc}"
            self.progress.say(f"scenarios: FAILED: {exc}")

    def _pids(self) -> list[int]:
        return [self.drivers[c.id].pid for c in self.active if self._ok(c)]

    def _ok(self, c: Contestant) -> bool:
        return c.id in self.drivers and self.measured[c.id].error is None

    def _guarded(self, c: Contestant, step) -> None:
        if not self._ok(c):
            return
        try:
            step()
        except Exception as exc:  # one contestant failing must not lose the others' figures
            self.measured[c.id].error = f"{type(exc).__name__}: {exc}"
            self.progress.say(f"{c.label}: FAILED: {exc}")
            self.drivers[c.id].abort()

    def _load(self) -> None:
        names = ", ".join(c.label for c in self.active)
        self.progress.say(f"loading {len(self.active)} contestants, each in its own process: {names}")
        for c in self.active:  # start them all, then wait: the loads overlap
            try:
                self.drivers[c.id] = make_driver(c, self.setup)
            except Exception as exc:
                self.measured[c.id].error = f"{type(exc).__name__}: {exc}"
                self.progress.say(f"{c.label}: FAILED to start: {exc}")
        for c in self.active:
            self._guarded(c, lambda c=c: self._ready(c))

    def _ready(self, c: Contestant) -> None:
        self.measured[c.id].load_s = self.drivers[c.id].ready()
        self.progress.say(f"{c.label}: ready in {self.measured[c.id].load_s:.1f}s")

    def _warm_up(self) -> None:
        plan = self.setup.plan
        self.progress.say(f"warm-up: every prompt, {plan.warmup_tokens} tokens (+ one {max(plan.levels)}-client burst)")
        for c in self.active:
            self._guarded(c, lambda c=c: self._warm(c))

    def _warm(self, c: Contestant) -> None:
        plan = self.setup.plan
        start = time.monotonic()
        clients = max(plan.levels) if c.id in self.setup.bursting else 1
        c.notes.extend(self.drivers[c.id].warmup(self.setup.prompts, plan.warmup_tokens, clients))
        self.progress.say(f"{c.label}: warmed up in {time.monotonic() - start:.1f}s")

    def _round(self, c: Contestant, rep: int) -> None:
        plan, driver, m = self.setup.plan, self.drivers[c.id], self.measured[c.id]
        timings = driver.single(self.setup.prompts, plan.new_tokens)
        for t in timings:
            check_stream(t, plan.new_tokens, c.label)
        m.singles.append(timings)
        figs = single_stream_rep(timings, self.long_ids)
        line = (
            f"round {rep + 1}/{plan.reps} {c.label}: decode {figs.decode_tps:.1f} tok/s, "
            f"TTFT short {1000 * figs.ttft_short_s:.0f} ms, long {1000 * figs.ttft_long_s:.0f} ms"
        )
        if c.id in self.setup.bursting:
            rates = []
            for clients in plan.levels:
                probe = c.kind == HTTP and clients == plan.probe_level
                burst = driver.burst(self.setup.burst_prompt, clients, plan.new_tokens, probe)
                for t in burst.timings:
                    check_stream(t, plan.new_tokens, f"{c.label} x{clients}")
                m.bursts.setdefault(clients, []).append(burst)
                rates.append(f"{clients}:{burst_rep(burst.timings, burst.wall_s).aggregate_tps:.0f}")
            line += f"; aggregate tok/s by clients {' '.join(rates)}"
        self.progress.say(line)

    def _finish(self, c: Contestant) -> None:
        driver = self.drivers[c.id]
        c.notes.extend(sorted(getattr(driver, "prompt_token_mismatches", ())))
        self.measured[c.id].peak_rss_bytes = driver.finish()
        self.progress.say(f"{c.label}: stopped, peak RSS {self.measured[c.id].peak_rss_bytes / 1e6:.0f} MB")
