"""What the engine reports to whoever watches it (the metrics layer). Called from the engine thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.engine.stopping import FinishReason


@dataclass(slots=True, frozen=True)
class EngineStats:
    running: int
    waiting: int
    prefilling: int
    max_running: int
    max_waiting: int
    cached_tokens: int = 0  # KV positions held by the prefix cache (finished sequences)
    kv_usage: float = 0.0  # KV positions of live sequences over the slots' capacity, 0..1


class EngineObserver(Protocol):
    def on_step(self, kind: str, seconds: float, batch_size: int, tokens: int) -> None:
        """kind: "prefill" or "decode"; tokens processed by this ORT call."""

    def on_admitted(self, queue_seconds: float, prompt_tokens: int) -> None: ...

    def on_prefix_lookup(self, prompt_tokens: int, hit_tokens: int) -> None:
        """A prefix-cache lookup at admission: `hit_tokens` of `prompt_tokens` came from the cache."""

    def on_first_token(self, seconds: float) -> None: ...

    def on_inter_token(self, seconds: float) -> None: ...

    def on_finished(self, reason: FinishReason, prompt_tokens: int, completion_tokens: int) -> None: ...

    def on_mask(self, seconds: float, rows: int) -> None:
        """Grammar bitmasks filled for `rows` constrained sequences of one step."""


class NullObserver:
    def on_step(self, kind: str, seconds: float, batch_size: int, tokens: int) -> None:
        pass

    def on_admitted(self, queue_seconds: float, prompt_tokens: int) -> None:
        pass

    def on_prefix_lookup(self, prompt_tokens: int, hit_tokens: int) -> None:
        pass

    def on_first_token(self, seconds: float) -> None:
        pass

    def on_inter_token(self, seconds: float) -> None:
        pass

    def on_finished(self, reason: FinishReason, prompt_tokens: int, completion_tokens: int) -> None:
        pass

    def on_mask(self, seconds: float, rows: int) -> None:
        pass
