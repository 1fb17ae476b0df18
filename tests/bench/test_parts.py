"""Smaller parts of the bench: the plan's limits, the OpenAI stream parsing, the prompt set, the CLI's errors."""

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

from app.config import Settings, load_settings
from benchmarks.load import Scenario, chunk_text, request_body, run_scenario, server_env
from benchmarks.plan import FULL_LEVELS, LENGTHS, QUICK_LEVELS, STYLES, load_prompts, make_plan
from benchmarks.scenarios import COLD_ENV
from benchmarks.server import ServeProcess, ServerError
from tests.conftest import run_cli


def test_plan_defaults_and_overrides():
    full, quick = make_plan(False), make_plan(True)
    assert (full.reps, full.new_tokens, full.levels) == (5, 128, FULL_LEVELS)
    assert (quick.reps, quick.new_tokens, quick.levels) == (2, 32, QUICK_LEVELS)
    assert {16, 32} <= set(quick.levels)  # the levels the targets need
    custom = make_plan(True, reps=3, new_tokens=16, levels=(8, 2, 8), threads=1)
    assert (custom.reps, custom.new_tokens, custom.levels, custom.threads) == (3, 16, (2, 8), 1)
    assert custom.probe_level == 8


def test_both_engine_contestants_run_the_server_defaults(monkeypatch):
    """The in-process engine and `llm-gateway serve` are paired in the report: same batch limit, same
    settings, whatever LLM_GATEWAY_* variables the user's shell holds (API keys would even 401 the load)."""
    monkeypatch.setenv("LLM_GATEWAY_MAX_RUNNING", "3")
    monkeypatch.setenv("LLM_GATEWAY_API_KEYS", "secret")
    env = server_env(threads=1)
    served = load_settings(env)
    assert served.threads == 1 and served.api_keys == ()
    assert served.engine_config() == Settings(model_dir=served.model_dir, threads=1).engine_config()
    # both run the prefix cache off (cold prefills every repetition): the same environment builds both
    cold = load_settings(server_env(threads=1, extra=COLD_ENV))
    assert cold.engine_config() == load_settings(COLD_ENV, model_dir=cold.model_dir, threads=1).engine_config()
    assert make_plan(True).max_running == served.max_running == Settings().max_running
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"reps": 0}, "--reps"),
        ({"new_tokens": 1}, "--new-tokens"),
        ({"levels": (0, 4)}, "--clients"),
        ({"threads": 0}, "--threads"),
    ],
)
def test_plan_rejects_out_of_range(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        make_plan(True, **kwargs)


def test_prompt_set_covers_every_kind():
    prompts = load_prompts()
    assert {(p.length, p.style) for p in prompts} == {(length, style) for length in LENGTHS for style in STYLES}
    chat = next(p for p in prompts if p.style == "chat")
    assert chat.messages[-1] == {"role": "user", "content": chat.text}


def test_request_bodies_ask_for_a_full_greedy_stream():
    prompts = {p.style: p for p in load_prompts()}
    route, body = request_body(prompts["chat"], "m", 64)
    assert route == "/v1/chat/completions"
    assert body["messages"] == prompts["chat"].messages
    route, body = request_body(prompts["plain"], "m", 64)
    assert route == "/v1/completions"
    assert body["prompt"] == prompts["plain"].text
    assert body["stream"] and body["ignore_eos"] and body["max_tokens"] == 64 and body["temperature"] == 0
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, ""),
        ({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}, "Hi"),
        ({"choices": [{"index": 0, "text": " there"}]}, " there"),
        ({"choices": [], "usage": {"completion_tokens": 3}}, ""),
        ({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}, ""),
    ],
)
def test_chunk_text(chunk, text):
    assert chunk_text(chunk) == text


def test_bench_without_an_export_exits_2_and_says_what_to_run(tmp_path):
    proc = run_cli("bench", "--quick", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "models/SmolLM2-135M-Instruct-gqa-auto does not exist" in proc.stderr  # the default export's folder
    assert "llm-gateway export" in proc.stderr
    assert not (tmp_path / "bench-results").exists()


def test_bench_rejects_bad_flags(tmp_path):
    proc = run_cli("bench", "--reps", "0", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "--reps must be at least 1" in proc.stderr


def test_a_chat_turn_carries_the_conversation_so_far():
    chat = next(p for p in load_prompts() if p.style == "chat")
    history = [*chat.messages, {"role": "assistant", "content": "Sure."}]
    _, body = request_body(chat, "m", 8, history)
    assert body["messages"] == [*history, chat.messages[-1]]


def test_a_scenario_runs_every_client_and_turn_and_keeps_each_conversation():
    """Two clients of two chat turns each against an OpenAI-style SSE stub (httpx's MockTransport)."""
    chat = next(p for p in load_prompts() if p.style == "chat")
    seen: list[dict] = []

    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        turn = len(body["messages"]) // 2
        chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{turn}-{i} "}}]} for i in range(3)]
        chunks.append({"choices": [], "usage": {"completion_tokens": 3, "prompt_tokens": 7}})
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})

    scenario = Scenario("two chats", ((chat, chat), (chat, chat)), extra={"seed": 1})

    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(reply), base_url="http://stub") as client:
            return await run_scenario(client, scenario, "m", 3)

    results, wall = asyncio.run(run())
    assert len(results) == 4 and all(r.timing.tokens == 3 and r.prompt_tokens == 7 for r in results)
    assert wall == max(r.sent_s + r.timing.end for r in results)
    assert results[0].sent_s == 0 and results[1].sent_s > 0  # a later turn is timed from its own send
    assert all(body["seed"] == 1 and body["max_tokens"] == 3 for body in seen)
    second = [body["messages"] for body in seen if len(body["messages"]) > len(chat.messages)]
    assert len(second) == 2
    assert second[0][len(chat.messages)] == {"role": "assistant", "content": results[0].text}
    assert [m["role"] for m in second[0]].count("system") == (1 if chat.system else 0)


def test_a_server_that_exits_before_ready_is_reported_with_its_code_and_log(tmp_path):
    srv = ServeProcess(tmp_path / "no-model", server_env(threads=1), tmp_path / "logs")
    with pytest.raises(ServerError, match="exited with 2") as failure:
        srv.wait_ready(timeout=120)
    assert "does not exist; run `llm-gateway export` first" in str(failure.value)
    assert srv.stop() == 2
    assert srv.log_path.parent == tmp_path / "logs" and str(srv.port) in srv.log_path.name


def test_kill_leftovers_also_reaps_a_child_no_popen_tracks():
    """A SIGTERM inside subprocess.Popen (after its fork) leaves a child that spawn() never recorded."""
    script = (
        "import os, subprocess, benchmarks.server as s\n"
        "tracked = s.spawn(['sleep', '60'])\n"
        "untracked = subprocess.Popen(['sleep', '60'])\n"
        "s.kill_leftovers()\n"
        "print(tracked.returncode, s.child_pids(os.getpid()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["-9", "[]"]
