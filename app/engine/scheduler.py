"""Continuous batching bookkeeping: who waits, who prefills, who decodes, and in which slot.

No numpy and no ORT here. Invariants after every call:
- running sequence i sits in KV slot i (slots 0..n-1 are one contiguous decode batch);
- at most one sequence prefills at a time, in slot n (right after the decode batch); within one step,
  further prompts may follow it (`next_prefill`) while the step's prefill token budget lasts;
- the sequences in slots reserve KV for their prompt plus max_new_tokens, rounded up to whole pages of the
  slot layout; a waiting sequence is admitted only while the reservations fit `kv_budget_tokens` (or when
  no other sequence holds a slot), oldest first;
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


# a prompt alone is still prefilled in calls of at most this many tokens: ORT's arena keeps the largest
# activations it ever served (attention scores grow with the square of the call's length), so one 2,000-token
# call left RSS ~100 MB higher for good; in 512-token calls ~45 MB, at the same speed (docs/engine.md)
SOLO_PREFILL_CHUNK = 512


def kv_reservation(seq: Sequence, page_tokens: int = 1) -> int:
    """KV positions `seq` may come to hold (its prompt and every token it may generate), rounded up to
    `page_tokens`: a slot's memory is committed a page at a time, and one page holds that many positions of
    one head, so the budget counts what is resident, not just what is used."""
    return -(-(len(seq.prompt_ids) + seq.params.max_new_tokens) // page_tokens) * page_tokens


def chunk_end(start: int, total: int, budget: int, least: int = 1) -> int:
    """Where a prompt call from `start` ends: `budget` tokens, but neither the call nor what it leaves of the
    prompt shorter than `least` (a call of fewer rows would take other kernels); a prompt of fewer than
    `least` tokens left goes whole."""
    end = min(total, start + max(budget, least))
    if 0 < total - end < least:  # the rest would be too short: leave `least` tokens, or take them all
        end = total - least if total - least - start >= least else total
    return end


class Scheduler:
    def __init__(
        self,
        max_running: int,
        prefill_chunk: int,
        kv_budget_tokens: int | None = None,
        kv_page_tokens: int = 1,
        min_chunk: int = 1,
    ) -> None:
        self.max_running = max_running
        self.prefill_chunk = prefill_chunk
        self.min_chunk = min_chunk  # the runner's min_rows: no prompt call of fewer tokens but a shorter prompt
        self.kv_budget_tokens = kv_budget_tokens  # None: only max_running bounds the batch
        self.kv_page_tokens = kv_page_tokens  # positions of one head in one memory page of a slot
        self.reserved_tokens = 0  # kv_reservation of every sequence in a slot (running or prefilling)
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
            # alone, the prompt goes in calls of up to SOLO_PREFILL_CHUNK; beside running streams, in chunks
            # that bound their stall
            chunk = self._chunk(self.prefilling, self.prefill_chunk if self.running else SOLO_PREFILL_CHUNK)
        return StepPlan(chunk, list(self.running))

    def next_prefill(self, spent: int, decoding: bool) -> PrefillChunk | None:
        """Another prompt in the same step, beside running streams, while the step's `prefill_chunk` token
        budget lasts (short prompts and cache hits join the batch together, not one per decode step)."""
        if not decoding or spent >= self.prefill_chunk or self.prefilling is not None:
            return None
        self._admit()
        return self._chunk(self.prefilling, self.prefill_chunk - spent) if self.prefilling is not None else None

    def _admit(self) -> None:
        if self.prefilling is None and self.waiting and len(self.running) < self.max_running and self._fits():
            seq = self.waiting.popleft()
            seq.status = RequestStatus.PREFILLING
            seq.slot = len(self.running)
            self.prefilling = seq
            self.reserved_tokens += kv_reservation(seq, self.kv_page_tokens)
            if self.on_admit is not None:
                self.on_admit(seq)

    def _fits(self) -> bool:
        """The oldest waiting sequence's reservation fits beside the others' (alone, any request fits: the
        engine refused those that exceed max_len). No overtaking: a later, smaller one waits behind it."""
        if self.kv_budget_tokens is None or not self.running:
            return True
        return self.reserved_tokens + kv_reservation(self.waiting[0], self.kv_page_tokens) <= self.kv_budget_tokens

    def _chunk(self, seq: Sequence, budget: int) -> PrefillChunk:
        return PrefillChunk(seq, seq.computed, chunk_end(seq.computed, len(seq.prompt_ids), budget, self.min_chunk))

    def prefill_done(self, seq: Sequence) -> None:
        seq.status = RequestStatus.RUNNING
        self.running.append(seq)
        self.prefilling = None

    def finish(self, seq: Sequence) -> list[Move]:
        """Take `seq` out of the queues; return the KV moves that keep the slots contiguous."""
        seq.status = RequestStatus.FINISHED
        if seq.slot >= 0:
            self.reserved_tokens -= kv_reservation(seq, self.kv_page_tokens)
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
