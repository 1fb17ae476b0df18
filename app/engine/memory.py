"""The serving process's memory: the KV budget in positions, and handing freed heap back to the OS.

docs/engine.md ("Memory") has the breakdown these come from: weights, tokenizers, ORT's arena, KV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


def kv_budget_tokens(budget_mb: int, kv_bytes_per_token: int) -> int | None:
    """KV positions that `budget_mb` MB hold (None for 0: no budget, max_running alone bounds the batch)."""
    if budget_mb <= 0:
        return None
    return max(1, budget_mb * 2**20 // kv_bytes_per_token)


def trim_heap() -> None:
    """Return the C heap's free pages to the OS (glibc `malloc_trim`; elsewhere nothing).

    Loading parses tokenizer.json twice and the graph once, and ORT's arena hands a long prompt's
    activations back after the call (`runner.SHRINK_AFTER_TOKENS`); glibc keeps such freed blocks mapped."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # musl and friends have no malloc_trim
        return None
    return trim
