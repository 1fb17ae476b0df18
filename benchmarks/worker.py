"""One contestant in its own process: `python -m benchmarks.worker SPEC_JSON`.

Its own process, so that its peak RSS (ru_maxrss) is its own and a PyTorch import never inflates the
engine's figure. It speaks JSON lines: one request on stdin, one reply on the protocol channel (the
original stdout); library chatter printed to stdout or stderr goes to the worker's log instead.

Requests: {"op": "warmup" | "single", "prompts": [[id, ids], ...], "new_tokens": N}
          {"op": "burst", "prompt": [id, ids], "clients": N, "new_tokens": N}   (engine only)
          {"op": "quit"}
Replies:  {"ok": true, ...} or {"ok": false, "error": "..."}; the first line says {"ok": true, "ready": ...}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO


def _protocol_channel() -> TextIO:
    """Keep the real stdout for replies; point fd 1 at stderr (the log) for everything else."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return channel


def _load(spec: dict[str, Any]) -> Any:
    kind = spec["kind"]
    threads = int(spec["threads"])
    if kind == "pytorch":
        from benchmarks.hf_side import TorchBaseline

        return TorchBaseline(spec["source"], threads)
    if kind == "ortmodel":
        from benchmarks.hf_side import OrtModelContestant

        return OrtModelContestant(Path(spec["model_dir"]), Path(spec["workdir"]), threads)
    if kind == "engine":
        from benchmarks.engine_side import EngineContestant

        return EngineContestant(Path(spec["model_dir"]), threads)
    raise ValueError(f"unknown contestant kind {kind!r}")


def _handle(contestant: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "warmup":
        contestant.warmup([(p, ids) for p, ids in request["prompts"]], request["new_tokens"])
        return {"notes": contestant.notes}
    if op == "single":
        runs = [contestant.generate(ids, request["new_tokens"], p) for p, ids in request["prompts"]]
        return {"runs": [t.as_dict() for t in runs]}
    if op == "burst":
        prompt_id, ids = request["prompt"]
        runs, wall = contestant.burst(ids, request["clients"], request["new_tokens"], prompt_id)
        return {"runs": [t.as_dict() for t in runs], "wall_s": wall}
    raise ValueError(f"unknown op {op!r}")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(argv: list[str]) -> int:
    channel = _protocol_channel()

    def reply(payload: dict[str, Any]) -> None:
        channel.write(json.dumps(payload) + "\n")
        channel.flush()

    spec = json.loads(argv[0])
    start = time.perf_counter()
    try:
        contestant = _load(spec)
    except Exception as exc:
        traceback.print_exc()
        reply({"ok": False, "error": f"loading failed: {type(exc).__name__}: {exc}"})
        return 1
    reply({"ok": True, "ready": True, "load_s": time.perf_counter() - start, "rss_bytes": peak_rss_bytes()})
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            if hasattr(contestant, "close"):
                contestant.close()
            reply({"ok": True, "peak_rss_bytes": peak_rss_bytes()})
            return 0
        try:
            reply({"ok": True, **_handle(contestant, request)})
        except Exception as exc:
            traceback.print_exc()
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
