"""The serving process's memory: the KV budget in positions, and handing freed heap back to the OS.

docs/engine.md ("Memory") has the breakdown these come from: weights, tokenizers, ORT's arena, KV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def kv_budget_tokens(budget_mb: int, kv_bytes_per_token: int) -> int | None:
    """KV positions that `budget_mb` MB hold (None for 0: no budget, max_running alone bounds the batch)."""
    if budget_mb <= 0:
        return None
    return max(1, budget_mb * 2**20 // kv_bytes_per_token)


def trim_heap() -> None:
    """Return the C heap's free pages to the OS (glibc `malloc_trim`; elsewhere nothing).

    Loading parses tokenizer.json twice and the graph once; glibc keeps the freed blocks mapped, ~14 MB
    of resident memory that nothing uses again."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # musl and friends have no malloc_trim
        return
    trim(0)
