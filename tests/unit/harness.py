"""An EngineCore on a FakeRunner, stepped by hand (no engine thread): the fast tier's test bench."""

from __future__ import annotations

from app.engine.core import EngineCore
from app.engine.prefix_cache import PrefixCache
from app.engine.request import RequestStatus, Sequence, TokenEvent
from app.engine.scheduler import Scheduler
from app.engine.stats import NullObserver
from app.engine.stopping import FinishReason
from tests.unit.fakes import FakeRunner


class LookupObserver(NullObserver):
    """Records every prefix-cache lookup as (prompt_tokens, hit_tokens) and every grammar-mask fill (rows)."""

    def __init__(self) -> None:
        self.lookups: list[tuple[int, int]] = []
        self.masks: list[int] = []

    def on_prefix_lookup(self, prompt_tokens: int, hit_tokens: int) -> None:
        self.lookups.append((prompt_tokens, hit_tokens))

    def on_mask(self, seconds: float, rows: int) -> None:
        self.masks.append(rows)


class Harness:
    """An EngineCore on a FakeRunner, stepped by hand; collects every event per request. `cache_tokens`
    turns the prefix cache on with that budget (in KV positions)."""

    def __init__(self, max_running: int = 4, prefill_chunk: int = 4, cache_tokens: int | None = None, **runner) -> None:
        self.runner = FakeRunner(max_slots=max_running + 1, **runner)
        self.scheduler = Scheduler(max_running, prefill_chunk, min_chunk=self.runner.min_rows)
        self.observer = LookupObserver()
        self.cache = PrefixCache(self.runner, cache_tokens) if cache_tokens is not None else None  # type: ignore[arg-type]
        self.core = EngineCore(self.runner, self.scheduler, self.observer, self.cache)  # type: ignore[arg-type]
        self.events: dict[str, list[TokenEvent]] = {}

    def add(self, *seqs: Sequence) -> None:
        for seq in seqs:
            self.events[seq.request_id] = []
            self.scheduler.add(seq)

    def step(self) -> None:
        self._collect(self.core.step())

    def finish(self, seq: Sequence, reason: FinishReason) -> None:
        events: list[TokenEvent] = []
        self.core.finish(seq, reason, events)
        self._collect(events)

    def run(self, max_steps: int = 1000) -> None:
        for _ in range(max_steps):
            if not self.scheduler.busy:
                return
            self.step()
        raise AssertionError("the engine did not finish")

    def step_until_running(self, seq: Sequence) -> None:
        while seq.status is not RequestStatus.RUNNING:
            self.step()

    def tokens(self, request_id: str) -> list[int]:
        return [t for e in self.events[request_id] for t in e.token_ids]

    def text(self, request_id: str) -> str:
        return "".join(e.text for e in self.events[request_id])

    def final(self, request_id: str) -> TokenEvent:
        last = self.events[request_id][-1]
        assert last.finished and sum(e.finished for e in self.events[request_id]) == 1
        return last

    def _collect(self, events: list[TokenEvent]) -> None:
        for event in events:
            self.events[event.request_id].append(event)
