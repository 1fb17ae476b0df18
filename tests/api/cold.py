"""Request fields for calls whose outputs a test compares with each other."""

from __future__ import annotations

import uuid


def cold() -> dict:
    """A fresh cache_salt: the call prefills its whole prompt. Calls whose texts are compared must not be served
    from the prefix cache: on the quantized variants (int8, gguf) a hit splits the prompt into other ORT calls,
    which can flip a near-tie greedy token or a seeded sample."""
    return {"cache_salt": uuid.uuid4().hex}
