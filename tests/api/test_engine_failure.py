"""If the model runner fails mid-stream, that stream ends with an error event and the server goes on.

The server runs in this process (uvicorn on a real loopback socket, the real exported model) so the test
can make the ONNX Runtime call fail at a chosen step, as a broken kernel or an exhausted machine would.
"""

from __future__ import annotations

import json
import threading

import httpx
import pytest
import uvicorn

from app.config import load_settings
from app.server import create_app
from benchmarks.server import wait_ready
from tests.api.conftest import free_port, stream_frames

STREAM_50 = {"prompt": "Hello", "max_new_tokens": 50, "stream": True, "ignore_eos": True}


@pytest.fixture
def inprocess(real_models):
    port = free_port()
    settings = load_settings({}, model_dir=real_models.default, port=port, threads=2, log_format="console")
    app = create_app(settings)
    gateway = app.state.gateway
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 60)
    yield url, gateway
    server.should_exit = True
    thread.join(timeout=30)


def fail_decode_after(gateway, steps: int) -> dict:
    runner = gateway.engine._core.runner
    real = runner.decode
    state = {"calls": 0, "armed": True}

    def decode(tokens, lengths):
        state["calls"] += 1
        if state["armed"] and state["calls"] > steps:
            state["armed"] = False
            raise RuntimeError("ORT kernel failed: simulated")
        return real(tokens, lengths)

    runner.decode = decode
    return state


def test_stream_ends_with_an_error_event_and_the_server_keeps_serving(inprocess):
    url, gateway = inprocess
    fail_decode_after(gateway, steps=5)
    chat = {
        "messages": [{"role": "user", "content": "Tell me a story"}],
        "max_tokens": 100,
        "stream": True,
        "ignore_eos": True,
    }
    _, frames = stream_frames(f"{url}/v1/chat/completions", chat)
    datas = [f["data"] for f in frames if "data" in f]
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])["error"]
    assert error["type"] == "server_error" and "simulated" in error["message"]
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in datas[1:-2]]
    assert 3 <= len([c for c in contents if c]) <= 6  # tokens were flowing before the failure

    _, native = stream_frames(f"{url}/v1/generate", STREAM_50)
    assert native[-1]["data"].startswith("{") and "error" not in native[-1].get("event", "")

    fail_decode_after(gateway, steps=2)
    _, native = stream_frames(f"{url}/v1/generate", STREAM_50)
    assert native[-1]["event"] == "error" and "simulated" in json.loads(native[-1]["data"])["error"]["message"]

    r = httpx.post(f"{url}/v1/generate", json={"prompt": "Hello", "max_new_tokens": 5, "ignore_eos": True})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    assert httpx.get(f"{url}/v1/ready").status_code == 200
    stats = gateway.engine.stats
    assert (stats.running, stats.waiting) == (0, 0)


def test_a_non_streamed_request_that_fails_is_a_500(inprocess):
    url, gateway = inprocess
    fail_decode_after(gateway, steps=1)
    r = httpx.post(f"{url}/v1/generate", json={"prompt": "Hello", "max_new_tokens": 20, "ignore_eos": True})
    assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error"
    assert httpx.post(f"{url}/v1/generate", json={"prompt": "Hi", "max_new_tokens": 2}).status_code == 200
