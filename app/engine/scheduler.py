"""Continuous batching bookkeeping: who waits, who prefills, who decodes, and in which slot.

No numpy and no ORT here. Invariants after every call:
- running sequence i sits in KV slot i (slots 0..n-1 are one contiguous decode batch);
- at most one sequence prefills at a time, in slot n (right after the decode batch); within one step,
  further prompts may follow it (`next_prefill`) while the step's prefill token budget lasts;
- `finish` returns the slot moves that restore both after a sequence leaves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.engine.request import RequestStatus, Sequence


@dataclass(slots=True)
class PrefillChunk:
    seq: Sequence
    start: int
    end: int

    @property
    def completes_prompt(self) -> bool:
        return self.end == len(self.seq.prompt_ids)


@dataclass(slots=True)
class StepPlan:
    prefill: PrefillChunk | None
    decode: list[Sequence]  # slot order: decode[i].slot == i


@dataclass(slots=True, frozen=True)
class Move:
    src: int
    dst: int
    length: int  # cached positions to carry


class Scheduler:
    def __init__(self, max_running: int, prefill_chunk: int) -> None:
        self.max_running = max_running
        self.prefill_chunk = prefill_chunk
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefilling: Sequence | None = None
        # called once per sequence, in its fresh slot, before its first chunk (the prefix cache sets `computed`)
        self.on_admit: Callable[[Sequence], object] | None = None

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running or self.prefilling)

    def add(self, seq: Sequence) -> None:
        seq.status = RequestStatus.WAITING
        self.waiting.append(seq)

    def schedule(self) -> StepPlan:
        self._admit()
        chunk = None
        if self.prefilling is not None:
            # alone, the whole prompt goes at once; beside running streams, in chunks that bound their stall
            chunk = self._chunk(self.prefilling, self.prefill_chunk if self.running else None)
        return StepPlan(chunk, list(self.running))

    def next_prefill(self, spent: int, decoding: bool) -> PrefillChunk | None:
        """Another prompt in the same step, beside running streams, while the step's `prefill_chunk` token
        budget lasts (short prompts and cache hits join the batch together, not one per decode step)."""
        if not decoding or spent >= self.prefill_chunk or self.prefilling is not None:
            return None
        self._admit()
        return self._chunk(self.prefilling, self.prefill_chunk - spent) if self.prefilling is not None else None

    def _admit(self) -> None:
        if self.prefilling is None and self.waiting and len(self.running) < self.max_running:
            seq = self.waiting.popleft()
            seq.status = RequestStatus.PREFILLING
            seq.slot = len(self.running)
            self.prefilling = seq
            if self.on_admit is not None:
                self.on_admit(seq)

    @staticmethod
    def _chunk(seq: Sequence, budget: int | None) -> PrefillChunk:
        end = len(seq.prompt_ids) if budget is None else min(len(seq.prompt_ids), seq.computed + budget)
        return PrefillChunk(seq, seq.computed, end)

    def prefill_done(self, seq: Sequence) -> None:
        seq.status = RequestStatus.RUNNING
        self.running.append(seq)
        self.prefilling = None

    def finish(self, seq: Sequence) -> list[Move]:
        """Take `seq` out of the queues; return the KV moves that keep the slots contiguous."""
        seq.status = RequestStatus.FINISHED
        if self.prefilling is seq:
            self.prefilling = None
            return []
        if seq not in self.running:
            if seq in self.waiting:
                self.waiting.remove(seq)
            return []
        moves = []
        gap = self.running.index(seq)
        last = self.running.pop()
        if last is not seq:
            self.running[gap] = last
            moves.append(Move(last.slot, gap, last.computed))
            last.slot = gap
        if self.prefilling is not None and self.prefilling.slot != len(self.running):
            target = len(self.running)
            moves.append(Move(self.prefilling.slot, target, self.prefilling.computed))
            self.prefilling.slot = target
        seq.slot = -1
        return moves
