"""What to measure: how much (the full run for the docs, or --quick: every section in under 5 minutes)
and on which prompts.

The prompts are the fixed set shipped in `benchmarks/prompts/`, tokenized once for every contestant.

Every contestant is given the same token ids (the exported folder's tokenizer, which `llm-gateway export`
copied from the source model), except the HTTP service, which gets the text or the chat messages and
tokenizes them itself; the benchmark checks that it counted the same prompt tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

import msgspec

from app.config import Settings, available_cpus
from app.engine.tokenizer import TextTokenizer

FULL_LEVELS = (1, 4, 8, 16, 32)
QUICK_LEVELS = (1, 16, 32)  # 16 and 32 carry targets
LENGTHS = ("short", "long")
STYLES = ("chat", "plain")


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    reps: int  # measured repetitions after the warm-up; figures are their medians
    new_tokens: int  # generated per request, EOS ignored
    warmup_tokens: int
    levels: tuple[int, ...]  # concurrent clients
    threads: int  # ORT intra-op threads = torch threads
    max_running: int  # the engine's batch limit: the server's default, which both engine contestants run
    http: bool
    scenarios: bool = False  # the structured-output and prefix-cache scenarios (benchmarks/scenarios.py)
    health_interval_s: float = 0.02
    load_timeout_s: float = 600.0
    step_timeout_s: float = 1800.0

    @property
    def probe_level(self) -> int:
        """/v1/health is probed during the burst with the most clients."""
        return max(self.levels)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def make_plan(
    quick: bool,
    reps: int | None = None,
    new_tokens: int | None = None,
    levels: tuple[int, ...] | None = None,
    threads: int | None = None,
    http: bool = True,
    scenarios: bool | None = None,
) -> Plan:
    """Defaults by mode, overridden by what the user passed; raises ValueError on a value out of range."""
    plan = Plan(
        quick=quick,
        reps=reps if reps is not None else (2 if quick else 5),
        new_tokens=new_tokens if new_tokens is not None else (32 if quick else 128),
        warmup_tokens=4 if quick else 16,
        levels=tuple(sorted(set(levels))) if levels else (QUICK_LEVELS if quick else FULL_LEVELS),
        threads=threads if threads is not None else available_cpus(),
        max_running=Settings().max_running,
        http=http,
        scenarios=(not quick if scenarios is None else scenarios) and http,
    )
    checks = [
        ("--reps", plan.reps >= 1, "must be at least 1"),
        ("--new-tokens", plan.new_tokens >= 2, "must be at least 2 (decode speed needs two tokens)"),
        ("--clients", all(n >= 1 for n in plan.levels), "must all be at least 1"),
        ("--threads", plan.threads >= 1, "must be at least 1"),
    ]
    for flag, ok, message in checks:
        if not ok:
            raise ValueError(f"{flag} {message}")
    return plan


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    length: str  # "short" | "long"
    style: str  # "chat" | "plain" | "native" (/v1/generate, the scenarios only)
    text: str  # the plain prompt, or the user message of a chat prompt
    system: str | None = None

    @property
    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": self.text}]


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    prompt: Prompt
    ids: list[int]

    @property
    def id(self) -> str:
        return self.prompt.id


class PromptEntry(msgspec.Struct, frozen=True):
    """One prompt of benchmarks/prompts/prompts.json; its text is in `file` beside it."""

    id: str
    length: Literal["short", "long"]
    style: Literal["chat", "plain"]
    file: str
    system: str | None = None


class PromptIndex(msgspec.Struct, frozen=True):
    prompts: list[PromptEntry]
    about: str = ""


def load_prompts() -> list[Prompt]:
    folder = resources.files("benchmarks").joinpath("prompts")
    try:
        index = msgspec.json.decode(folder.joinpath("prompts.json").read_bytes(), type=PromptIndex)
    except msgspec.ValidationError as exc:
        raise ValueError(f"benchmarks/prompts/prompts.json: {exc}") from None
    prompts = [
        Prompt(e.id, e.length, e.style, folder.joinpath(e.file).read_text(encoding="utf-8").strip(), e.system)
        for e in index.prompts
    ]
    kinds = {(p.length, p.style) for p in prompts}
    missing = [f"{length}-{style}" for length in LENGTHS for style in STYLES if (length, style) not in kinds]
    if missing:
        raise ValueError(f"benchmarks/prompts/prompts.json lacks {', '.join(missing)} prompts")
    return prompts


def encode(prompt: Prompt, tokenizer: TextTokenizer) -> EncodedPrompt:
    if prompt.style == "chat":
        return EncodedPrompt(prompt, tokenizer.encode_chat(prompt.messages))
    return EncodedPrompt(prompt, tokenizer.encode(prompt.text))
