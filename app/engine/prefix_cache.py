"""Automatic prefix caching: a new sequence starts from the longest prefix of its prompt whose KV is
already held, by a running sequence (its slot) or by a finished one (a snapshot kept here).

Matching is exact, on token ids, and per salt (`cache_salt`: tenants that give different salts never
share). Reused KV is copied into the new sequence's slot, so slots stay what the decode batch needs;
the last prompt position is always recomputed, for its logits. Snapshots are kept least-recently-used
under a token budget; eviction unmaps them (memory back to the OS). A running sequence's KV lives in
its slot, never in a snapshot, so eviction cannot touch it.

The budget counts the live sequences' slots too: snapshots only fill KV memory that the running batch
is not using (`budget - live`), so under a full batch the process peaks no higher than without a cache
(running donors still share their prefixes then).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from app.engine.request import Sequence
from app.engine.runner import KvSnapshot, ModelRunner

# shorter hits are not taken: they save a few ms of prefill, and on int8 graphs a prompt's result depends on how
# it is split into calls (the activations' dynamic quantization scale is per call), so short prompts stay as before
MIN_REUSE_TOKENS = 32


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two int64 token arrays."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def cached_ids(seq: Sequence) -> np.ndarray:
    """Token ids of the positions in `seq`'s KV: the prompt, then the output fed back so far."""
    ids = np.empty(seq.computed, np.int64)  # [computed]
    head = min(seq.computed, len(seq.prompt_ids))
    ids[:head] = seq.prompt_ids[:head]
    ids[head:] = seq.output_ids[: seq.computed - head]
    return ids


def _live_tokens(seqs: Iterable[Sequence]) -> int:
    return sum(s.computed for s in seqs)


@dataclass(slots=True, eq=False)
class _Entry:
    salt: str
    tokens: np.ndarray  # [L] int64
    kv: KvSnapshot


class PrefixCache:
    def __init__(self, runner: ModelRunner, budget_tokens: int) -> None:
        self.runner = runner
        self.budget_tokens = budget_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # least recently used first
        self._next_id = 0
        self.cached_tokens = 0  # positions held in snapshots

    @property
    def cached_bytes(self) -> int:
        return self.cached_tokens * self.runner.kv_bytes_per_token

    def __len__(self) -> int:
        return len(self._entries)

    def reuse(self, seq: Sequence, running: list[Sequence]) -> int:
        """Fill `seq`'s fresh slot with the longest cached prefix of its prompt; return its length."""
        # [P-r]: the last position is always computed, for its logits; and a prompt call is never shorter
        # than the runner's min_rows, so r = max(1, min_rows)
        prompt = np.asarray(seq.prompt_ids[: -max(1, self.runner.min_rows)], np.int64)
        best, donor = 0, None
        for other in running:
            if other.cache_salt == seq.cache_salt and other.slot >= 0:
                n = common_prefix(prompt, cached_ids(other))
                if n > best:
                    best, donor = n, other
        key, n = self._match(seq.cache_salt, prompt)
        best = max(best, n)
        if best < MIN_REUSE_TOKENS:
            best = 0
        elif key is not None and n >= best:
            entry = self._entries[key]
            self._entries.move_to_end(key)
            self.runner.restore(seq.slot, entry.kv, best)
        else:
            self.runner.copy(donor.slot, seq.slot, best)
        seq.computed = seq.cached_tokens = best
        self._make_room(0, _live_tokens(running) + len(seq.prompt_ids))
        return best

    def keep(self, seq: Sequence, live: list[Sequence]) -> None:
        """Snapshot a leaving sequence's KV (call before its slot is released); `live`: every sequence in a slot."""
        room = self.budget_tokens - _live_tokens(s for s in live if s is not seq)
        length = min(seq.computed, room)
        if length <= 0:
            return
        tokens = cached_ids(seq)[:length]
        for key, entry in list(self._entries.items()):
            if entry.salt != seq.cache_salt:
                continue
            n = common_prefix(tokens, entry.tokens)
            if n == length:  # already held by a longer (or equal) snapshot
                self._entries.move_to_end(key)
                return
            if n == len(entry.tokens):  # the new one extends it
                self._drop(key)
        self._make_room(length, self.budget_tokens - room)
        self._entries[self._next_id] = _Entry(seq.cache_salt, tokens, self.runner.save(seq.slot, length))
        self._next_id += 1
        self.cached_tokens += length

    def clear(self) -> None:
        for key in list(self._entries):
            self._drop(key)

    def _match(self, salt: str, prompt: np.ndarray) -> tuple[int | None, int]:
        best, best_key = 0, None
        for key, entry in self._entries.items():
            if entry.salt == salt:
                n = common_prefix(prompt, entry.tokens)
                if n > best:
                    best, best_key = n, key
        return best_key, best

    def _make_room(self, tokens: int, live_tokens: int) -> None:
        while self._entries and live_tokens + self.cached_tokens + tokens > self.budget_tokens:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.cached_tokens -= len(entry.tokens)
        entry.kv.close()
