"""The fixed prompt set shipped in `benchmarks/prompts/`, tokenized once for every contestant.

Every contestant is given the same token ids (the exported folder's tokenizer, which `llm-gateway export`
copied from the source model), except the HTTP service, which gets the text or the chat messages and
tokenizes them itself; the benchmark checks that it counted the same prompt tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from app.engine.tokenizer import TextTokenizer

LENGTHS = ("short", "long")
STYLES = ("chat", "plain")


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    length: str  # "short" | "long"
    style: str  # "chat" | "plain"
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


def load_prompts() -> list[Prompt]:
    folder = resources.files("benchmarks").joinpath("prompts")
    index = json.loads(folder.joinpath("prompts.json").read_text(encoding="utf-8"))
    prompts = [
        _prompt(entry, folder.joinpath(entry["file"]).read_text(encoding="utf-8").strip()) for entry in index["prompts"]
    ]
    kinds = {(p.length, p.style) for p in prompts}
    missing = [f"{length}-{style}" for length in LENGTHS for style in STYLES if (length, style) not in kinds]
    if missing:
        raise ValueError(f"benchmarks/prompts/prompts.json lacks {', '.join(missing)} prompts")
    return prompts


def _prompt(entry: dict[str, Any], text: str) -> Prompt:
    if entry["length"] not in LENGTHS or entry["style"] not in STYLES:
        raise ValueError(f"prompt {entry['id']}: length must be one of {LENGTHS} and style one of {STYLES}")
    return Prompt(entry["id"], entry["length"], entry["style"], text, entry.get("system"))


def encode(prompt: Prompt, tokenizer: TextTokenizer) -> EncodedPrompt:
    if prompt.style == "chat":
        return EncodedPrompt(prompt, tokenizer.encode_chat(prompt.messages))
    return EncodedPrompt(prompt, tokenizer.encode(prompt.text))
