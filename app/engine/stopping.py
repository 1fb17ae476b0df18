"""When a sequence stops: small pure functions and one callable, tested on fixed inputs (TGI style)."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from app.engine.params import SamplingParams


class FinishReason(enum.StrEnum):
    """Why a sequence ended; the values are the API's finish_reason strings (msgspec encodes them as is)."""

    STOP = "stop"  # end-of-sequence token, stop token id or stop string
    LENGTH = "length"  # max_new_tokens reached
    ABORT = "abort"  # cancelled: the client went away
    TIMEOUT = "timeout"  # the request's deadline passed
    ERROR = "error"  # the model runner failed
    TOOL_CALLS = "tool_calls"  # a stop whose answer is tool calls: set by app/tools.py, never by the engine


class StoppingCriteria:
    """Token-level stop checks: `(token, generated) -> FinishReason | None`."""

    def __init__(self, params: SamplingParams, eos_token_ids: Sequence[int]) -> None:
        self.max_new_tokens = params.max_new_tokens
        self.min_new_tokens = params.min_new_tokens
        stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            stop_ids.update(eos_token_ids)
        self.stop_ids = frozenset(stop_ids)

    def __call__(self, token: int, generated: int) -> FinishReason | None:
        if token in self.stop_ids and generated >= self.min_new_tokens:
            return FinishReason.STOP
        if generated >= self.max_new_tokens:
            return FinishReason.LENGTH
        return None

    def suppressed(self, generated: int) -> frozenset[int]:
        """Token ids to mask before sampling: the stop ids until min_new_tokens are out."""
        return self.stop_ids if generated < self.min_new_tokens else frozenset()


def find_stop(text: str, stops: Sequence[str], search_from: int) -> int | None:
    """Index where the earliest stop string starts, considering matches that end after `search_from`."""
    best: int | None = None
    for stop in stops:
        index = text.find(stop, max(0, search_from - len(stop) + 1))
        if index != -1 and (best is None or index < best):
            best = index
    return best


def holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` could be the start of a stop string (not yet emittable)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
