"""Model runners: the only code that calls `session.run`. One per graph kind, same interface.

Slots: a runner holds KV state for up to `max_slots` sequences. The scheduler keeps the running
sequences in slots 0..n-1 (it moves the last one into a freed gap), so that one decode step is one
ORT call over a contiguous batch.

- GqaRunner: one preallocated buffer per layer and kind, `[max_slots, kv_heads, max_len, head_dim]`.
  Past and present are bound to the same memory, so the GroupQueryAttention kernel appends the new
  token in place: no per-step copy of the cache and no allocation that grows with context.
- OptimumRunner: the Optimum graph concatenates past and new KV into a fresh present each step. The
  presents stay OrtValues and are bound as the next step's past (no numpy round trip). Rows are
  left-padded to a common length; the batch is rebuilt only when its membership changes.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort

from app.engine.manifest import LOGITS_TO_KEEP, GraphIO, GraphKind, Manifest, ModelShape
from app.engine.memory import trim_heap

# A prompt call of at least this many tokens hands its activations back when it ends (ORT's arena shrinks,
# then glibc's heap): otherwise the arena keeps the largest calls it served, and a later peak of live KV
# sits on top of them (docs/engine.md "Memory").
SHRINK_AFTER_TOKENS = 128

# the Optimum graph keeps KV as left-padded OrtValues rebuilt on every batch change: no slot to copy into cheaply
PREFIX_CACHE_GQA_ONLY = "the prefix cache needs a gqa graph"


class SlotBuffer:
    """A float32 zero array `[slots, ...]` whose memory is committed page by page as positions are
    written, and handed back to the OS slot by slot when a slot empties.

    np.zeros would commit lazily too, but numpy asks for transparent huge pages on large arrays: the
    first write into each 2 MB region then zeroes (and may compact memory for) a whole huge page.
    Measured: a 40-token prefill into a fresh slot took 200+ ms instead of 40, and RSS grew ~180 MB per
    slot used. `discard` keeps RSS following the live sequences, not the longest one ever served.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        count = int(np.prod(shape))
        self._map = mmap.mmap(-1, max(count * 4, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            self._map.madvise(mmap.MADV_NOHUGEPAGE)
        self.array = np.frombuffer(self._map, np.float32, count=count).reshape(shape)
        self.slot_bytes = self.array.strides[0]

    def close(self) -> None:
        """Unmap the whole buffer: its memory goes back to the OS now, not when the GC gets to it."""
        del self.array
        try:
            self._map.close()
        except BufferError:  # a view outlives the buffer: drop the pages now, the mapping goes with the view
            self._map.madvise(mmap.MADV_DONTNEED)

    def discard(self, slot: int) -> None:
        """Drop the slot's pages: they read as zeros again, and cost nothing until written."""
        start = -(-slot * self.slot_bytes // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the slot
        end = (slot + 1) * self.slot_bytes // mmap.PAGESIZE * mmap.PAGESIZE
        if end > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)


class KvSnapshot:
    """Cached positions of one sequence, `[layers * 2, kv_heads, length, head_dim]`, in their own mapping so
    that `close` hands the memory straight back to the OS (the prefix cache's eviction)."""

    def __init__(self, kv: list[np.ndarray], length: int) -> None:
        kv_heads, head_dim = kv[0].shape[0], kv[0].shape[-1]
        self.length = length
        self._buffer = SlotBuffer((len(kv), kv_heads, length, head_dim))
        self.array = self._buffer.array
        for dst, src in zip(self.array, kv, strict=True):
            dst[:] = src[:, :length]
        self.nbytes = self.array.nbytes

    def close(self) -> None:
        del self.array
        self._buffer.close()


class ModelRunner(Protocol):
    max_slots: int
    # every call computes at least this many rows: 2 where a lone row would take another kernel than a batch
    # and get other numbers (4-bit MatMulNBits: docs/export.md); decode pads, prefill chunks keep to it
    min_rows: int
    kv_bytes_per_token: int  # fp32 K and V of every layer for one position
    kv_page_tokens: int  # positions of one head that one memory page of a slot holds
    max_len: int
    vocab_size: int

    def prefill(self, slot: int, token_ids: np.ndarray, start: int) -> np.ndarray:
        """Append `token_ids` [S] at positions start..start+S-1 of `slot`; return last logits [V]."""
        ...

    def decode(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """One step for slots 0..n-1: token_ids [n] go at positions `lengths` [n]; return logits [n, V].

        The returned array is a view into a reused buffer, valid until the next call.
        """
        ...

    def move(self, src: int, dst: int, length: int) -> None:
        """Move the first `length` cached positions of slot `src` into free slot `dst`."""
        ...

    def release(self, slot: int) -> None: ...

    def copy(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of slot `src` into slot `dst` (src keeps its own)."""
        ...

    def save(self, slot: int, length: int) -> KvSnapshot:
        """A copy of the first `length` cached positions of `slot`, outside the slots."""
        ...

    def restore(self, slot: int, snapshot: KvSnapshot, length: int) -> None:
        """Write the first `length` positions of `snapshot` into `slot`."""
        ...

    def forward_full(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits [S, V] for every position of one sequence (validation and perplexity)."""
        ...


def make_runner(session: ort.InferenceSession, manifest: Manifest, max_slots: int, max_len: int) -> ModelRunner:
    if max_len > manifest.model.context_length:
        raise ValueError(f"max_len {max_len} exceeds the model's context length {manifest.model.context_length}")
    if manifest.graph is GraphKind.GQA:
        return GqaRunner(session, manifest.model, manifest.io, max_slots, max_len, manifest.recipe.min_rows)
    return OptimumRunner(session, manifest.model, manifest.io, max_slots, max_len)


class _RunnerBase:
    def __init__(
        self, session: ort.InferenceSession, shape: ModelShape, io: GraphIO, max_slots: int, max_len: int
    ) -> None:
        self.session = session
        self.shape = shape
        self.max_slots = max_slots
        self.max_len = max_len
        self.min_rows = 1
        self.vocab_size = shape.vocab_size
        self.kv_bytes_per_token = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * 4
        self.kv_page_tokens = max(1, mmap.PAGESIZE // (shape.head_dim * 4))
        self._kv_names = [
            (tmpl_in.format(layer=layer), tmpl_out.format(layer=layer))
            for layer in range(shape.num_layers)
            for tmpl_in, tmpl_out in ((io.past_key, io.present_key), (io.past_value, io.present_value))
        ]
        if LOGITS_TO_KEEP not in io.inputs:
            raise ValueError(f"the graph has no {LOGITS_TO_KEEP} input; re-export it with llm-gateway export")
        # an overridable initializer: bind_cpu_input refuses it, an OrtValue binding is accepted
        self._keep_one = ort.OrtValue.ortvalue_from_numpy(np.ones(1, np.int64))
        # [max_slots, 1, V]: decode and prefill write their last-position logits here
        self._logits = np.zeros((max_slots, 1, shape.vocab_size), np.float32)
        # flat scratch for attention masks; a [n, W] view of its head is filled each step
        self._mask_flat = np.zeros(max_slots * (max_len + 1), np.int64)
        self._cols = np.arange(max_len + 1, dtype=np.int64)

    def _bind_common(
        self, io: ort.IOBinding, ids: np.ndarray, mask: np.ndarray, rows: int, keep_all: bool = False
    ) -> None:
        io.bind_cpu_input("input_ids", ids)
        io.bind_cpu_input("attention_mask", mask)
        if keep_all:
            io.bind_ortvalue_input(LOGITS_TO_KEEP, ort.OrtValue.ortvalue_from_numpy(np.array([ids.shape[1]], np.int64)))
            io.bind_output("logits", "cpu")
        else:
            self._bind_last_logits(io, rows)

    def _bind_last_logits(self, io: ort.IOBinding, rows: int) -> None:
        """Logits of the last position only, written into rows 0..rows-1 of the reused buffer."""
        io.bind_ortvalue_input(LOGITS_TO_KEEP, self._keep_one)
        io.bind_output("logits", "cpu", 0, np.float32, [rows, 1, self.vocab_size], self._logits.ctypes.data)

    def _mask_view(self, rows: int, width: int) -> np.ndarray:
        return self._mask_flat[: rows * width].reshape(rows, width)

    def _last_logits(self, rows: int) -> np.ndarray:
        return self._logits[:rows, 0]


class GqaRunner(_RunnerBase):
    """Slot i lives at row i + min_rows - 1 of the buffers: the rows in front are spares that pad a decode
    batch smaller than `min_rows` (a spare writes its dummy token at its own position 0 and attends to it
    alone), so that a lone stream is computed by the same kernels, and to the same bits, as a batch."""

    def __init__(
        self,
        session: ort.InferenceSession,
        shape: ModelShape,
        io: GraphIO,
        max_slots: int,
        max_len: int,
        min_rows: int = 1,
    ) -> None:
        super().__init__(session, shape, io, max_slots + min_rows - 1, max_len)
        self.max_slots = max_slots
        self.min_rows = min_rows
        self._spares = min_rows - 1
        kv_shape = (max_slots + self._spares, shape.num_kv_heads, max_len, shape.head_dim)
        self._buffers = [SlotBuffer(kv_shape) for _ in self._kv_names]
        self._kv = [b.array for b in self._buffers]
        self._slot_bytes = self._buffers[0].slot_bytes
        self._decode_io: tuple[int, ort.IOBinding] | None = None
        self._shrink_arena = ort.RunOptions()
        self._shrink_arena.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def _bind_kv(self, io: ort.IOBinding, first: int, count: int) -> None:
        """Bind buffer rows first..first+count-1 (rows, not slots: spares included)."""
        shape = [count, self.shape.num_kv_heads, self.max_len, self.shape.head_dim]
        for buf, (past, present) in zip(self._kv, self._kv_names, strict=True):
            ptr = buf.ctypes.data + first * self._slot_bytes
            io.bind_input(past, "cpu", 0, np.float32, shape, ptr)
            io.bind_output(present, "cpu", 0, np.float32, shape, ptr)

    def prefill(self, slot: int, token_ids: np.ndarray, start: int) -> np.ndarray:
        n = len(token_ids)
        io = self.session.io_binding()
        # logits first: get_outputs() follows binding order
        self._bind_common(
            io, token_ids.reshape(1, n).astype(np.int64, copy=False), np.ones((1, start + n), np.int64), 1
        )
        self._bind_kv(io, slot + self._spares, 1)
        if n >= SHRINK_AFTER_TOKENS:
            self.session.run_with_iobinding(io, self._shrink_arena)
            trim_heap()
        else:
            self.session.run_with_iobinding(io)
        return self._last_logits(1)[0]

    def decode(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        n = len(token_ids)
        pad = max(0, self.min_rows - n)  # spare rows in front of slot 0
        rows = n + pad
        if self._decode_io is None or self._decode_io[0] != n:
            # the KV views and the logits rows depend on n only: bound once per batch size
            io = self.session.io_binding()
            self._bind_kv(io, self._spares - pad, rows)
            self._bind_last_logits(io, rows)
            self._decode_io = (n, io)
        io = self._decode_io[1]
        if pad:  # a spare's dummy token 0 goes at its position 0
            token_ids = np.concatenate([np.zeros(pad, np.int64), token_ids])  # [rows]
            lengths = np.concatenate([np.zeros(pad, np.int64), lengths])  # [rows]
        width = int(lengths.max()) + 1
        mask = self._mask_view(rows, width)
        # right padding: row i attends to its own lengths[i] + 1 positions
        np.less(self._cols[:width], (lengths + 1)[:, None], out=mask, casting="unsafe")
        io.bind_cpu_input("input_ids", token_ids.reshape(rows, 1).astype(np.int64, copy=False))
        io.bind_cpu_input("attention_mask", mask)
        self.session.run_with_iobinding(io)
        return self._last_logits(rows)[pad:]

    def move(self, src: int, dst: int, length: int) -> None:
        self.copy(src, dst, length)
        self.release(src)

    def copy(self, src: int, dst: int, length: int) -> None:
        src, dst = src + self._spares, dst + self._spares
        for buf in self._kv:
            buf[dst, :, :length] = buf[src, :, :length]

    def save(self, slot: int, length: int) -> KvSnapshot:
        return KvSnapshot([buf[slot + self._spares] for buf in self._kv], length)

    def restore(self, slot: int, snapshot: KvSnapshot, length: int) -> None:
        for buf, part in zip(self._kv, snapshot.array, strict=True):
            buf[slot + self._spares, :, :length] = part[:, :length]

    def release(self, slot: int) -> None:
        for buf in self._buffers:
            buf.discard(slot + self._spares)

    def forward_full(self, token_ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(token_ids, np.int64).reshape(1, -1)
        if ids.shape[1] > self.max_len:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_len {self.max_len}")
        io = self.session.io_binding()
        self._bind_common(io, ids, np.ones_like(ids), 1, keep_all=True)
        self._bind_kv(io, self._spares, 1)
        self.session.run_with_iobinding(io)
        return io.get_outputs()[0].numpy()[0]


class OptimumRunner(_RunnerBase):
    def __init__(
        self, session: ort.InferenceSession, shape: ModelShape, io: GraphIO, max_slots: int, max_len: int
    ) -> None:
        super().__init__(session, shape, io, max_slots, max_len)
        self._kv_shape = (shape.num_kv_heads, shape.head_dim)
        self._pending: dict[int, list[ort.OrtValue]] = {}  # slot -> presents [1, kv, p, hd] of its prefill
        self._members: list[int] = []  # slot of each batch row
        self._past: list[ort.OrtValue] = []  # [B, kv, P, hd] per layer and kind, rows left-padded to P
        self._width = 0  # P
        self._pos = np.zeros(max_slots, np.int64)
        self._has_pos = io.has_position_ids

    def _empty_past(self, rows: int) -> list[ort.OrtValue]:
        kvh, hd = self._kv_shape
        return [ort.OrtValue.ortvalue_from_numpy(np.zeros((rows, kvh, 0, hd), np.float32)) for _ in self._kv_names]

    def _run(self, io: ort.IOBinding, past: list[ort.OrtValue]) -> list[ort.OrtValue]:
        for ov, (past_name, present_name) in zip(past, self._kv_names, strict=True):
            io.bind_ortvalue_input(past_name, ov)
            io.bind_output(present_name, "cpu")
        self.session.run_with_iobinding(io)
        outs = io.get_outputs()
        return list(outs[len(outs) - len(self._kv_names) :])

    def prefill(self, slot: int, token_ids: np.ndarray, start: int) -> np.ndarray:
        n = len(token_ids)
        past = self._pending.get(slot) if start else None
        io = self.session.io_binding()
        self._bind_common(
            io, token_ids.reshape(1, n).astype(np.int64, copy=False), np.ones((1, start + n), np.int64), 1
        )
        if self._has_pos:
            io.bind_cpu_input("position_ids", np.arange(start, start + n, dtype=np.int64).reshape(1, n))
        self._pending[slot] = self._run(io, past if past is not None else self._empty_past(1))
        return self._last_logits(1)[0]

    def _rebuild(self, n: int, lengths: np.ndarray) -> None:
        """Lay the batch out anew for slots 0..n-1, right-aligned to the longest (left padding)."""
        width = int(lengths.max())
        kvh, hd = self._kv_shape
        old_rows = {slot: row for row, slot in enumerate(self._members)}
        old = [ov.numpy() for ov in self._past] if self._past else []
        fresh = [np.zeros((n, kvh, width, hd), np.float32) for _ in self._kv_names]
        for slot in range(n):
            length = int(lengths[slot])
            if slot in self._pending:
                src = [ov.numpy()[0] for ov in self._pending.pop(slot)]  # [kv, length, hd]
            else:
                row = old_rows[slot]
                src = [arr[row, :, self._width - length :] for arr in old]  # [kv, length, hd]
            for dst, arr in zip(fresh, src, strict=True):
                dst[slot, :, width - length :] = arr
        self._past = [ort.OrtValue.ortvalue_from_numpy(a) for a in fresh]
        self._members = list(range(n))
        self._width = width

    def decode(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        n = len(token_ids)
        if self._members != list(range(n)) or any(s < n for s in self._pending):
            self._rebuild(n, lengths)
        width = self._width + 1
        mask = self._mask_view(n, width)
        # left padding: row i attends to its last lengths[i] + 1 columns
        np.greater_equal(self._cols[:width], (width - 1 - lengths)[:, None], out=mask, casting="unsafe")
        io = self.session.io_binding()
        self._bind_common(io, token_ids.reshape(n, 1).astype(np.int64, copy=False), mask, n)
        if self._has_pos:
            pos = self._pos[:n]
            pos[:] = lengths
            io.bind_cpu_input("position_ids", pos.reshape(n, 1))
        self._past = self._run(io, self._past)
        self._width = width
        return self._last_logits(n)

    def move(self, src: int, dst: int, length: int) -> None:
        if src in self._pending:
            self._pending[dst] = self._pending.pop(src)
        if src in self._members:
            self._members[self._members.index(src)] = dst

    def release(self, slot: int) -> None:
        self._pending.pop(slot, None)
        if slot in self._members:
            self._members[self._members.index(slot)] = -1

    def copy(self, src: int, dst: int, length: int) -> None:
        raise NotImplementedError(PREFIX_CACHE_GQA_ONLY)

    def save(self, slot: int, length: int) -> KvSnapshot:
        raise NotImplementedError(PREFIX_CACHE_GQA_ONLY)

    def restore(self, slot: int, snapshot: KvSnapshot, length: int) -> None:
        raise NotImplementedError(PREFIX_CACHE_GQA_ONLY)

    def forward_full(self, token_ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(token_ids, np.int64).reshape(1, -1)
        io = self.session.io_binding()
        self._bind_common(io, ids, np.ones_like(ids), 1, keep_all=True)
        if self._has_pos:
            io.bind_cpu_input("position_ids", np.arange(ids.shape[1], dtype=np.int64).reshape(1, -1))
        self._run(io, self._empty_past(1))
        return io.get_outputs()[0].numpy()[0]
