"""Per-request state inside the engine (owned by the engine thread) and the events it emits."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.engine.detokenizer import IncrementalDetokenizer
from app.engine.params import SamplingParams
from app.engine.stopping import FinishReason, StoppingCriteria

PROMPT_TAIL_FOR_DETOKENIZER = 4


class RequestStatus(enum.IntEnum):
    WAITING = 0
    PREFILLING = 1
    RUNNING = 2
    # anything after RUNNING is finished (vLLM's ordering trick)
    FINISHED = 3

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.FINISHED


@dataclass(slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # (token id, logprob), most likely first


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache


@dataclass(slots=True)
class Timings:
    queue_s: float = 0.0  # arrival -> prefill start
    ttft_s: float = 0.0  # arrival -> first token
    total_s: float = 0.0  # arrival -> finish


@dataclass(slots=True)
class TokenEvent:
    """What one engine step produced for one request. The last event carries `finish_reason`."""

    request_id: str
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None
    usage: Usage
    finish_reason: FinishReason | None = None
    timings: Timings | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(slots=True, eq=False)
class Sequence:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    stopping: StoppingCriteria
    detok: IncrementalDetokenizer
    rng: np.random.Generator
    deadline: float | None = None  # time.monotonic() value
    cache_salt: str = ""  # prefix-cache namespace: only sequences with the same salt share KV
    status: RequestStatus = RequestStatus.WAITING
    slot: int = -1
    computed: int = 0  # positions written to the KV cache
    cached_tokens: int = 0  # of those, taken from the prefix cache at admission
    output_ids: list[int] = field(default_factory=list)
    text: str = ""  # text decoded so far (stop strings already cut)
    emitted: int = 0  # len(text) already sent
    finish_reason: FinishReason | None = None
    output_counts: np.ndarray | None = None  # [V] int32, for presence/frequency penalties
    seen: np.ndarray | None = None  # [V] bool, for the repetition penalty
    matcher: Any = None  # llguidance.LLMatcher when the request has a grammar
    arrival: float = field(default_factory=time.monotonic)
    prefill_start: float = 0.0
    first_token_at: float = 0.0
    last_token_at: float = 0.0

    @property
    def length(self) -> int:
        """Tokens in the sequence: prompt plus output."""
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def last_token(self) -> int:
        return self.output_ids[-1]

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=len(self.prompt_ids), completion_tokens=len(self.output_ids), cached_tokens=self.cached_tokens
        )

    def timings(self, now: float) -> Timings:
        start = self.prefill_start or now
        first = self.first_token_at or now
        return Timings(queue_s=start - self.arrival, ttft_s=first - self.arrival, total_s=now - self.arrival)
