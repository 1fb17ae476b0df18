"""Health prober, in its own process: `python -m benchmarks.probe HOST PORT PATH INTERVAL MAX_SECONDS`.

It GETs PATH over one keep-alive connection every INTERVAL seconds and times each answer, until its
stdin closes (the parent is done) or MAX_SECONDS pass; then it prints one JSON line:
{"latencies_s": [...], "errors": [...]}. A process of its own, so that neither the load generator's
event loop nor its GIL delays a probe and inflates the figure.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def probe(host: str, port: int, path: str, interval: float, max_seconds: float, stop: threading.Event) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    conn = http.client.HTTPConnection(host, port, timeout=10)
    deadline = time.monotonic() + max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            if response.status == 200:
                latencies.append(elapsed)
            else:
                errors.append(f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        stop.wait(max(0.0, interval - (time.perf_counter() - start)))
    conn.close()
    return {"latencies_s": latencies, "errors": errors}


def main(argv: list[str]) -> int:
    host, port, path, interval, max_seconds = argv[0], int(argv[1]), argv[2], float(argv[3]), float(argv[4])
    stop = threading.Event()

    def wait_for_parent() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin
        stop.set()

    threading.Thread(target=wait_for_parent, daemon=True).start()
    print("ready", flush=True)
    print(json.dumps(probe(host, port, path, interval, max_seconds, stop)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
