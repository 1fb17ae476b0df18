"""The scenarios of issues 11 and 12, run on two servers of their own after the rounds: structured outputs
(a JSON schema on /v1/generate against the same request unconstrained, one stream and 16 at once) and the
automatic prefix cache (the same loads on a server with LLM_GATEWAY_PREFIX_CACHE=true and one with false).

Every repetition runs every scenario on both servers back to back, alternating which server goes first,
so that each with/without ratio pairs two measurements of the same moment. The bench's other figures are
cold prefills: they run with the cache off (COLD_ENV), and so do the structured-output scenarios.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from app.config import PREFIX
from benchmarks.grammar_speed import measure as measure_grammar
from benchmarks.load import HttpService, Scenario, StreamResult
from benchmarks.plan import Plan, Prompt
from benchmarks.scenario_results import (
    GrammarSpeed,
    Rep,
    ScenarioResults,
    cache_figures,
    cache_ratios,
    structured_figures,
)

CACHE = f"{PREFIX}PREFIX_CACHE"
COLD_ENV: Mapping[str, str] = {CACHE: "false"}  # every figure outside the cache scenarios: cold prefills
WARM_ENV: Mapping[str, str] = {CACHE: "true"}
SERVERS = {"cache_on": WARM_ENV, "cache_off": COLD_ENV}

FRUITS = "List twelve fruits as JSON:"
FRUIT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "array", "minItems": 12, "maxItems": 12,
            "items": {"type": "string", "minLength": 8, "maxLength": 16},
        }
    },
    "required": ["items"],
}  # fmt: skip
CONSTRAINED = {"json_schema": FRUIT_SCHEMA, "ignore_eos": False}  # the schema's end is the stream's end
UNCONSTRAINED = "no schema,"  # how the twin of each constrained scenario is named

QUESTIONS = (
    "What is the main idea of the text?", "Summarize the second paragraph in one sentence.",
    "Which examples does the text give?", "What would you ask the author?", "Who is the text written for?",
    "What is the most surprising claim?", "List three key terms from the text.", "What does the text leave out?",
    "How would you explain this to a child?", "Give the text a title.", "What is the tone of the text?",
    "Which sentence is the most important?", "What could be a follow-up topic?", "Is anything in the text wrong?",
    "What is one practical use of this?", "Rewrite the first sentence more simply.",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScenarioCounts:
    """How much each scenario does: the issues' sizes in the full run, small ones with --quick."""

    turns: int  # of the multi-turn chat
    turn_tokens: int  # new tokens per chat turn and per shared-prompt or short-prompt client
    shared_clients: int  # clients sharing the long system prompt
    short_clients: int  # short-prompt clients
    schema_tokens: int  # max_new_tokens of the structured-output requests
    schema_clients: int  # concurrent constrained (and unconstrained) streams

    @classmethod
    def for_plan(cls, plan: Plan) -> ScenarioCounts:
        return cls(3, 8, 4, 4, 48, 4) if plan.quick else cls(10, 32, 16, 32, 200, 16)


def system_prompt(document: str) -> str:
    """The ~500-token system prompt every cache scenario shares: an instruction and the long plain prompt."""
    return f"You are a careful assistant. Answer questions about this text in a few sentences.\n\n{document}"


def cache_scenarios(counts: ScenarioCounts, system: str, short: Prompt) -> list[Scenario]:
    """Issue 12's loads: a multi-turn chat, clients sharing one system prompt, many short-prompt clients."""
    turns = tuple(
        Prompt(f"chat-turn-{i + 1}", "long", "chat", q, system) for i, q in enumerate(_questions(counts.turns))
    )
    shared = tuple(
        (Prompt(f"shared-{i + 1}", "long", "chat", q, system),) for i, q in enumerate(_questions(counts.shared_clients))
    )
    return [
        Scenario(f"{counts.turns}-turn chat", (turns,)),
        Scenario(f"{counts.shared_clients} clients, shared system prompt", shared),
        Scenario(f"{counts.short_clients} clients, short prompt", ((short,),) * counts.short_clients),
    ]


def structured_scenarios(counts: ScenarioCounts) -> list[Scenario]:
    """Issue 11's loads: one stream, then `schema_clients` at once, constrained and unconstrained."""
    fruits = Prompt("fruits-json", "short", "native", FRUITS)
    many = counts.schema_clients
    return [
        Scenario("schema, 1 stream", ((fruits,),), extra=CONSTRAINED),
        Scenario(f"{UNCONSTRAINED} 1 stream", ((fruits,),)),
        Scenario(f"schema, {many} streams", ((fruits,),) * many, extra=CONSTRAINED),
        Scenario(f"{UNCONSTRAINED} {many} streams", ((fruits,),) * many),
    ]


def twin_tokens(scenario: Scenario, tokens: int, previous: Rep | None) -> int:
    """An unconstrained structured scenario decodes as many tokens as its constrained twin just did (the
    longest of its streams), so that both sides pay for the same prefills over the same number of tokens:
    the aggregate ratio then compares decode steps, not how soon the schema ends."""
    if previous is None or not scenario.name.startswith(UNCONSTRAINED):
        return tokens
    return max(r.timing.tokens for r in previous[0])


def salted(scenario: Scenario, salt: str) -> dict[str, Any]:
    """The scenario's extra fields with a `cache_salt`: one repetition never reuses another's prefixes."""
    return {**scenario.extra, "cache_salt": salt}


def _questions(n: int) -> list[str]:
    return [QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" ({i + 1})") for i in range(n)]


@dataclass(slots=True)
class ScenarioRun:
    """What the scenarios produced: per server, per scenario name, one list of results a repetition."""

    counts: ScenarioCounts
    cache_names: list[str]  # the chat, shared-prompt and short-prompt scenarios, in that order
    structured_names: list[str]  # schema and no schema, 1 stream then many
    results: dict[str, dict[str, list[Rep]]] = field(default_factory=dict)  # server -> scenario -> [rep]
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)  # server -> VmHWM
    grammar: GrammarSpeed | None = None  # compile and mask times over the test schemas, in the bench process

    def figures(self) -> ScenarioResults:
        on, off = self.results["cache_on"], self.results["cache_off"]
        return ScenarioResults(
            counts=asdict(self.counts),
            cache_on=cache_figures(on, self.cache_names, self.peak_rss_bytes.get("cache_on")),
            cache_off=cache_figures(off, self.cache_names, self.peak_rss_bytes.get("cache_off")),
            cache_ratios=cache_ratios(on, off, self.cache_names),
            structured=structured_figures(off, self.structured_names, self.counts.schema_clients),
            grammar=self.grammar,
        )


class ScenarioService(Protocol):
    """What the scenarios need of a server: HttpService, or a stub in the tests."""

    def ready(self) -> float: ...

    def run_results(self, scenario: Scenario, new_tokens: int) -> tuple[list[StreamResult], float]: ...

    def finish(self) -> int: ...  # peak RSS bytes

    def abort(self) -> None: ...


def run_scenarios(
    model_dir: Path,
    plan: Plan,
    workdir: Path,
    short: Prompt,
    document: str,
    say: Callable[[str], None],
    make_service: Callable[[Path, Plan, Path, Mapping[str, str]], ScenarioService] = HttpService,
    grammar_speed: Callable[[Path], GrammarSpeed | None] = measure_grammar,
) -> ScenarioRun:
    """Time the grammars (before any server runs), then start both servers, run `plan.reps` repetitions of
    every scenario on each, stop them."""
    counts = ScenarioCounts.for_plan(plan)
    cache = cache_scenarios(counts, system_prompt(document), short)
    structured = structured_scenarios(counts)
    loads = {
        "cache_on": [(s, counts.turn_tokens) for s in cache],
        "cache_off": [(s, counts.turn_tokens) for s in cache] + [(s, counts.schema_tokens) for s in structured],
    }
    run = ScenarioRun(counts, [s.name for s in cache], [s.name for s in structured], {name: {} for name in SERVERS})
    run.grammar = grammar_speed(model_dir)
    services = {name: make_service(model_dir, plan, workdir, env) for name, env in SERVERS.items()}
    try:
        for name, service in services.items():
            say(f"scenarios: server with {CACHE}={SERVERS[name][CACHE]} ready in {service.ready():.1f}s")
            for scenario, _ in loads[name]:  # one request of each: grammar compiled, routes warm
                first = Scenario(scenario.name, (scenario.clients[0][:1],), extra=salted(scenario, "warm-up"))
                service.run_results(first, plan.warmup_tokens)
        for rep in range(plan.reps):
            order = list(SERVERS) if rep % 2 == 0 else list(reversed(SERVERS))
            for name in order:
                outcome: Rep | None = None
                for scenario, tokens in loads[name]:
                    salted_scenario = replace(scenario, extra=salted(scenario, f"rep-{rep}"))
                    outcome = services[name].run_results(salted_scenario, twin_tokens(scenario, tokens, outcome))
                    run.results[name].setdefault(scenario.name, []).append(outcome)
            say(f"scenarios: repetition {rep + 1}/{plan.reps} done")
        for name, service in services.items():
            run.peak_rss_bytes[name] = service.finish()
    finally:
        for name, service in services.items():
            if name not in run.peak_rss_bytes:
                service.abort()
    return run
