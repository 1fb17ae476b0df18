"""A stand-in for llama.cpp's llama-server, for the bench's llama-server contestant (tests/bench/test_llama_server.py).

It takes the flags the bench passes (the real server's spelling; anything else is an argparse error, exit 2,
as the real one exits on an unknown flag), prints `version: ...` for --version, answers /health with 503 while
"loading" and then 200, lists its model at /v1/models, and streams /v1/chat/completions and /v1/completions
in llama-server's shape (tools/server/server-task.cpp): one chunk per token, then the finish_reason chunk with
`usage` and `timings` (chat: those ride on a last chunk with empty choices when the request asks for
stream_options.include_usage), then `data: [DONE]`. A request without the fields the bench must send
(stream, greedy, ignore_eos, cache_prompt false, max_tokens) gets llama-server's 400 error body. With
FAKE_LLAMA_SERVER_LOG set, it appends its argv and every request body to that file as JSON lines. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.6.0-dev (build 9999, commit fa4e11a)"
LOADING_S = 0.5
TOKEN_S = 0.002  # the stand-in's "decode" time per token


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llama-server")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("-m", "--model")
    parser.add_argument("-t", "--threads", type=int)
    parser.add_argument("-tb", "--threads-batch", type=int)
    parser.add_argument("-np", "--parallel", type=int)
    parser.add_argument("-c", "--ctx-size", type=int)
    parser.add_argument("-cb", "--cont-batching", action="store_true")
    parser.add_argument("--jinja", action="store_true")
    parser.add_argument("--no-webui", action="store_true")
    parser.add_argument("--no-cache-prompt", action="store_true")
    parser.add_argument("-cram", "--cache-ram", type=int)
    parser.add_argument("-a", "--alias")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    return parser.parse_args(argv)


def log(entry: dict) -> None:
    path = os.environ.get("FAKE_LLAMA_SERVER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def bad_request(body: dict) -> str | None:
    """Why the bench's request is not what a fair measurement needs, or None."""
    checks = [
        ("stream", body.get("stream") is True),
        ("temperature", body.get("temperature") == 0),
        ("ignore_eos", body.get("ignore_eos") is True),
        ("cache_prompt", body.get("cache_prompt") is False),
        ("max_tokens", isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0),
    ]
    return next((f"'{name}' is missing or wrong" for name, ok in checks if not ok), None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    started = time.monotonic()
    alias = "model"

    def log_message(self, *args) -> None:  # quiet, like `llama-server` without --verbose
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            if time.monotonic() - self.started < LOADING_S:
                error = {"code": 503, "message": "Loading model", "type": "unavailable_error"}
                return self._json(503, {"error": error})
            return self._json(200, {"status": "ok"})
        if self.path == "/v1/models":
            model = {"id": self.alias, "object": "model", "created": int(time.time()), "owned_by": "llamacpp"}
            return self._json(200, {"object": "list", "data": [model]})
        self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        log({"path": self.path, "body": body})
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            return self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        if why := bad_request(body):
            return self._json(400, {"error": {"code": 400, "message": why, "type": "invalid_request_error"}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in self.chunks(body):
            self._send(f"data: {json.dumps(chunk)}\n\n")
        self._send("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def chunks(self, body: dict):
        chat = self.path == "/v1/chat/completions"
        text = " ".join(m["content"] for m in body["messages"]) if chat else body["prompt"]
        prompt_tokens, new = len(text.split()), body["max_tokens"]
        head = {"created": int(time.time()), "model": self.alias, "system_fingerprint": "b9999-fa4e11a"}
        head |= {"object": "chat.completion.chunk", "id": "chatcmpl-1"} if chat else {"object": "text_completion"}

        def choice(piece: str | None, finish: str | None = None) -> dict:
            if chat:
                return {"finish_reason": finish, "index": 0, "delta": {} if piece is None else {"content": piece}}
            return {"text": piece or "", "index": 0, "logprobs": None, "finish_reason": finish}

        if chat:
            yield {**head, "choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant"}}]}
        start = time.perf_counter()
        for i in range(new):
            time.sleep(TOKEN_S)
            yield {**head, "choices": [choice(f" w{i}")]}
        ms = 1000 * (time.perf_counter() - start)
        usage = {"completion_tokens": new, "prompt_tokens": prompt_tokens, "total_tokens": new + prompt_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0}}  # fmt: skip
        timings = {"prompt_n": prompt_tokens, "prompt_ms": 1.0, "predicted_n": new, "predicted_ms": ms}
        if not chat:  # /v1/completions: usage and timings ride on the finish chunk
            yield {**head, "choices": [choice(None, "length")], "usage": usage, "timings": timings}
            return
        # chat: the finish chunk, then (stream_options.include_usage) an empty-choices chunk with the usage
        if not (body.get("stream_options") or {}).get("include_usage"):
            yield {**head, "choices": [choice(None, "length")], "timings": timings}
            return
        yield {**head, "choices": [choice(None, "length")]}
        yield {**head, "choices": [], "usage": usage, "timings": timings}


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.version:
        print(f"version: {VERSION}\nbuilt with fake-cc for x86_64-linux-gnu", file=sys.stderr)
        return 0
    log({"argv": argv})
    Handler.alias = args.alias or os.path.basename(args.model or "model")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
