"""Issues 11 and 12's bench scenarios against httpx MockTransport SSE stubs (no model, no server): the request
bodies they send, the figures and ratios drawn from them, and their tables in the report."""

import argparse
import asyncio
import json
from pathlib import Path

import httpx
import msgspec
import pytest

from benchmarks.cli import add_arguments
from benchmarks.load import run_scenario
from benchmarks.plan import load_prompts, make_plan
from benchmarks.report import render
from benchmarks.results import read_results, scenario_targets
from benchmarks.scenario_results import GrammarSpeed
from benchmarks.scenarios import (
    COLD_ENV,
    FRUIT_SCHEMA,
    FRUITS,
    SERVERS,
    ScenarioCounts,
    cache_scenarios,
    run_scenarios,
    salted,
    structured_scenarios,
    system_prompt,
)
from tests.bench.test_report import results  # noqa: F401  (the synthetic run the report tests use)

PROMPTS = {p.id: p for p in load_prompts()}
SHORT, DOCUMENT = PROMPTS["short-chat"], PROMPTS["long-plain"].text


def sse(events):
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events)


class Stub:
    """An OpenAI-style and /v1/generate SSE server; with `cache`, a repeated system prompt is reported as
    cached and its first token comes sooner (a sleep per uncached prompt character stands for the prefill)."""

    def __init__(self, cache: bool) -> None:
        self.cache = cache
        self.bodies: list[dict] = []
        self.seen: set[tuple[str, str]] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if request.url.path == "/v1/generate":
            tokens = 30 if "json_schema" in body else body["max_new_tokens"]
            events = [{"text": f"w{i} "} for i in range(tokens - 1)]
            usage = {"prompt_tokens": 6, "completion_tokens": tokens, "total_tokens": tokens + 6}
            events.append({"text": "end", "finish_reason": "length", "usage": usage})
            await asyncio.sleep(0.001 * tokens)
            return httpx.Response(200, content=sse(events).encode(), headers={"content-type": "text/event-stream"})
        messages = body["messages"]
        prefix = (body.get("cache_salt", ""), messages[0]["content"])
        hit = self.cache and prefix in self.seen
        self.seen.add(prefix)
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4
        cached = prompt_tokens * 9 // 10 if hit else 0
        await asyncio.sleep(0.00002 * (prompt_tokens - cached))  # the prefill
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        chunks += [{"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]} for i in range(body["max_tokens"])]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": body["max_tokens"],
                 "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip
        chunks.append({"choices": [], "usage": usage})
        text = sse(chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def run_on(stub: Stub, scenario, tokens: int):
    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(stub), base_url="http://stub") as client:
            return await run_scenario(client, scenario, "m", tokens)

    return asyncio.run(go())


QUICK = ScenarioCounts.for_plan(make_plan(True, scenarios=True))


def test_quick_counts_are_small_and_the_full_ones_the_issues():
    full = ScenarioCounts.for_plan(make_plan(False))
    assert (full.turns, full.turn_tokens, full.shared_clients, full.short_clients) == (10, 32, 16, 32)
    assert (full.schema_tokens, full.schema_clients) == (200, 16)
    assert QUICK.turns >= 2 and QUICK.short_clients <= 4 and QUICK.turn_tokens <= 8
    assert make_plan(False).scenarios and not make_plan(True).scenarios and make_plan(True, scenarios=True).scenarios
    assert not make_plan(False, http=False).scenarios  # they need the HTTP service
    assert SERVERS["cache_on"] == {"LLM_GATEWAY_PREFIX_CACHE": "true"} and SERVERS["cache_off"] == COLD_ENV


def test_structured_scenarios_send_the_schema_and_the_unconstrained_twin():
    stub = Stub(cache=False)
    for scenario in structured_scenarios(QUICK):
        streamed, wall = run_on(stub, scenario, 200)
        assert len(streamed) == len(scenario.clients) and wall > 0
    constrained = [b for b in stub.bodies if "json_schema" in b]
    plain = [b for b in stub.bodies if "json_schema" not in b]
    assert len(constrained) == len(plain) == 1 + QUICK.schema_clients
    assert constrained[0] == {"prompt": FRUITS, "max_new_tokens": 200, "temperature": 0, "stream": True,
                              "ignore_eos": False, "json_schema": FRUIT_SCHEMA}  # fmt: skip
    assert plain[0] == {"prompt": FRUITS, "max_new_tokens": 200, "temperature": 0, "stream": True, "ignore_eos": True}


def test_cache_scenarios_share_one_long_system_prompt_and_keep_the_chat():
    system = system_prompt(DOCUMENT)
    assert 1800 < len(system) < 2800  # ~500 tokens
    chat, shared, short = cache_scenarios(QUICK, system, SHORT)
    assert len(chat.clients) == 1 and len(chat.clients[0]) == QUICK.turns
    assert len(shared.clients) == QUICK.shared_clients
    assert len({c[0].text for c in shared.clients}) == QUICK.shared_clients  # different questions
    assert all(c[0].system == system for c in shared.clients) and chat.clients[0][0].system == system
    assert short.clients == ((SHORT,),) * QUICK.short_clients
    stub = Stub(cache=True)
    turns, _ = run_on(stub, chat, 4)
    last = stub.bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["system"] + ["user", "assistant"] * (QUICK.turns - 1) + ["user"]
    assert turns[0].cached_tokens == 0 and all(r.cached_tokens for r in turns[1:])
    assert all(b.get("cache_salt") is None for b in stub.bodies)
    assert salted(chat, "rep-1") == {"cache_salt": "rep-1"}
    assert all(turns[i].sent_s < turns[i + 1].sent_s for i in range(len(turns) - 1))
    assert all(r.timing.ttft < 1.0 for r in turns)  # each turn timed from its own send


class StubService:
    """The scenarios' view of a server, answered by a Stub (run_scenarios' seam for HttpService)."""

    def __init__(self, model_dir, plan, workdir, env):
        self.stub = Stub(cache=env["LLM_GATEWAY_PREFIX_CACHE"] == "true")
        self.rss = 480_000_000 if self.stub.cache else 470_000_000
        STARTED.append(self)

    def ready(self):
        return 0.5

    def run_results(self, scenario, new_tokens):
        return run_on(self.stub, scenario, new_tokens)

    def finish(self):
        return self.rss

    def abort(self):
        raise AssertionError("a service that finished is not aborted")


STARTED: list[StubService] = []
GRAMMAR = GrammarSpeed(21, 0.2, 20.0, 150.0, 900.0, 2500.0, 400.0)  # what benchmarks.grammar_speed measures


def scenario_run(plan, lines):
    STARTED.clear()
    return run_scenarios(Path("m"), plan, Path("w"), SHORT, DOCUMENT, lines.append, StubService, lambda _: GRAMMAR)


def test_the_scenario_phase_warms_up_then_salts_every_repetition():
    plan, lines = make_plan(True, reps=2, scenarios=True), []
    scenario_run(plan, lines)
    on, off = (s.stub for s in STARTED)
    assert on.cache and not off.cache
    salts = [b["cache_salt"] for b in on.bodies]
    warm = 3  # one request of each cache scenario first
    assert set(salts[:warm]) == {"warm-up"} and all(b["max_tokens"] == plan.warmup_tokens for b in on.bodies[:warm])
    turns = QUICK.turns + QUICK.shared_clients + QUICK.short_clients
    assert salts[warm:] == ["rep-0"] * turns + ["rep-1"] * turns
    assert sum("json_schema" in b for b in off.bodies) == 2 + 2 * (1 + QUICK.schema_clients)  # warm-ups, 2 reps
    assert not any("json_schema" in b for b in on.bodies)  # structured outputs run on the cache-off server
    fruits = [b for b in off.bodies if b.get("prompt") == FRUITS and not b["cache_salt"].startswith("warm")]
    plain = [b["max_new_tokens"] for b in fruits if "json_schema" not in b]
    assert plain == [30] * len(plain) and len(plain) == 2 * (1 + QUICK.schema_clients)  # the twin's 30 tokens
    assert "scenarios: repetition 2/2 done" in lines[-1]


def test_scenario_figures_pair_the_servers_and_judge_the_issues_targets(results, tmp_path):  # noqa: F811
    figs = scenario_run(make_plan(True, reps=2, scenarios=True), []).figures()
    assert figs.cache_ratios.chat_ttft.n == 2 and figs.cache_ratios.chat_ttft.median < 1  # the cache hits
    assert figs.cache_on.chat_cached_share == pytest.approx(0.9, abs=0.01)
    assert figs.cache_off.chat_cached_share == 0
    assert figs.structured.schema_tokens.median == 30 and figs.structured.clients == QUICK.schema_clients
    assert figs.structured.single_ratio.median > 0
    results.scenarios = figs
    targets = scenario_targets(results)
    assert len(targets) == 7 and all(t.passed is not None for t in targets)
    rss = next(t for t in targets if "RSS" in t.name)
    assert rss.value == 480 and rss.passed
    results.targets += targets
    report = render(results)
    section = report.split("## Structured outputs and prefix cache")[1].split("## Memory and size")[0]
    assert "Test CPU (avx2, avx512f)" in section
    assert f"{QUICK.turns}-turn chat, TTFT turns 2-{QUICK.turns} ms" in section
    assert section.count("PASS: ") + section.count("FAIL: ") == 7
    assert "| server peak RSS MB | 480 | 470 |" in section
    assert figs.grammar == GRAMMAR and "compile over the 21 test schemas p50 0.20 ms, p99 20.00 ms" in section
    (tmp_path / "results.json").write_bytes(msgspec.json.encode(results))
    assert read_results(tmp_path / "results.json").scenarios == figs


def test_without_the_scenarios_the_report_says_why(results):  # noqa: F811
    assert scenario_targets(results) == []
    section = render(results).split("## Structured outputs and prefix cache")[1].split("## Memory")[0]
    assert "Not measured: not run" in section


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--quick"], False), (["--quick", "--scenarios"], True), ([], True), (["--no-scenarios"], False)],
)
def test_the_scenarios_flag(argv, expected):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    assert make_plan(args.quick, scenarios=args.scenarios).scenarios is expected
